"""Per model, the shipped standard scan (committed records) against the rescan with the second
trigger-recovery start, both judged by the shipped classifier.json (docs/bench/trigger-starts/PROTOCOL.md).

Usage: python compare.py OLD.json NEW.json [OLD.json NEW.json ...]
A model took the second start when its new record says ``trigger_starts`` 2; records written before that
field existed (the s2000 and s2100 rescans) count a model when its trigger-recovery step ran at least 1.4x
as long as before or its trigger features moved.
"""
import json
import sys

from modelscan_bd.bench import model_probability, reported_target
from modelscan_bd.verdict import load_calibration, status_for

cal = load_calibration(None, "classifier", budget="standard")


def rows(path):
    return {r["name"]: r for r in json.load(open(path))["records"]}


def main(paths):
    took = secs_old = secs_new = 0
    n = 0
    for old_path, new_path in zip(paths[::2], paths[1::2]):
        old, new = rows(old_path), rows(new_path)
        print(f"\n## {old_path} -> {new_path}\n")
        print("| model | attack | target | second start | log ratio old -> new | p old -> new | status old -> new"
              " | target old -> new |")
        print("|---|---|---|---|---|---|---|---|")
        for name in sorted(old):
            a, b = old[name], new[name]
            second = b.get("trigger_starts") == 2 if "trigger_starts" in b else (
                b["steps"]["trigger-recovery"] >= 1.4 * a["steps"]["trigger-recovery"]
                or any(a["features"][k] != b["features"][k]
                       for k in ("trigger_log_ratio", "trigger_holdout_success", "untargeted_log_ratio")))
            took += second
            n += 1
            secs_old += a["seconds"]
            secs_new += b["seconds"]
            pa, pb = model_probability(a, cal), model_probability(b, cal)
            sa, sb = status_for(pa, cal, False, 10), status_for(pb, cal, False, 10)
            ta, tb = reported_target(a, cal), reported_target(b, cal)
            fa, fb = a["features"]["trigger_log_ratio"], b["features"]["trigger_log_ratio"]
            print(f"| {name} | {a['attack']} | {a['target']} | {'yes' if second else ''} | {fa:.3f} -> {fb:.3f} "
                  f"| {pa:.3f} -> {pb:.3f} | {sa} -> {sb} | {ta} -> {tb} |")
    print(f"\n{n} models, {took} took the second start; seconds per model {secs_old / n:.1f} -> {secs_new / n:.1f} "
          f"({100 * (secs_new / secs_old - 1):+.1f} %)")


if __name__ == "__main__":
    main(sys.argv[1:])
