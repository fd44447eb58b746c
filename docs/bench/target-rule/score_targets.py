"""Target accuracy of the reported target under the rule before and after the change of
2026-12-05 (docs/bench/target-rule/PROTOCOL.md), rebuilt from bench records.

    .venv/bin/python docs/bench/target-rule/score_targets.py NAME=results.json ...

Before: with no trigger flagged, the unflagged patch/blend trigger's label. After
(``scan._suspected_targets``): a signal that works on held-out images comes first."""
import json
import sys

from modelscan_bd.bench import TARGETED_TYPES, reported_target
from modelscan_bd.detectors.signal import signal_found
from modelscan_bd.detectors.trigger import trigger_found
from modelscan_bd.detectors.warp import warp_found
from modelscan_bd.verdict import load_calibration


def before(record: dict, cal) -> int | None:
    """The reported target under the rule before the change."""
    f, det = record["features"], cal.detectors
    none_found = not any([
        trigger_found(f.get("trigger_log_ratio"), f.get("trigger_holdout_success"), det.get("trigger", {})),
        record.get("signal_label") is not None and signal_found(f.get("signal_gap"), f.get("signal_success"),
                                                                det.get("signal", {})),
        record.get("warp_label") is not None and warp_found(f.get("warp_fragility"), f.get("warp_success"),
                                                            det.get("warp", {}))])
    if none_found and record.get("candidate") is not None:
        return record["candidate"]
    return reported_target(record, cal)


def main(args: list[str]) -> None:
    cal = load_calibration(None, budget="standard")
    print("| zoo | models | before | after | Neural Cleanse | changed (name: true, before -> after) |")
    print("|---|---|---|---|---|---|")
    for arg in args:
        name, path = arg.split("=", 1)
        records = [r for r in json.load(open(path))["records"] if r["backdoored"] and r["type"] in TARGETED_TYPES]
        old = [before(r, cal) for r in records]
        new = [reported_target(r, cal) for r in records]
        nc = [(r.get("neural_cleanse") or {}).get("target") for r in records]
        hits = [sum(p == r["target"] for p, r in zip(ps, records)) for ps in (old, new, nc)]
        changed = ", ".join(f"{r['name']}: {r['target']}, {o} -> {n}" for r, o, n in zip(records, old, new) if o != n)
        n = len(records)
        print(f"| {name} | {n} | {hits[0]}/{n} | {hits[1]}/{n} | {hits[2]}/{n} | {changed or '-'} |")


if __name__ == "__main__":
    main(sys.argv[1:])
