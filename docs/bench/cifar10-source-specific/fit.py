"""Write the candidate `standard` file: `pair_score`'s clean reference fitted on the ordinary clean
ten-class models of `dev.jsonl` (`measure.py`'s rows), by the shipped rule (`verdict.fit_references`, cut
mean + 3 widened deviations); the detector's `score_threshold` is that cut. Nothing else changes.
Rows measured before the score was recorded get it from their gap and successes (`pair.pair_score`).
Prints every development row against the cut.

    python docs/bench/cifar10-source-specific/fit.py DEV.jsonl SHIPPED.json OUT.json
"""
import json
import sys
from pathlib import Path

from modelscan_bd.detectors.pair import pair_score
from modelscan_bd.verdict import fit_references


def main(dev: str, shipped: str, out: str) -> None:
    rows = [json.loads(line) for line in open(dev)]
    for r in rows:
        r.setdefault("score", pair_score(r["crowd_gap"], r["holdout_success"], r["off_source_success"]))
    clean = [r for r in rows if r["attack"] == "clean" and not r["hard"]]
    ref = fit_references([{"pair_score": r["score"]} for r in clean], [0] * len(clean),
                         {"pair_score": 1}, 3.0)["pair_score"]
    cut = ref["mean"] + ref["z_cut"] * ref["sd"]
    cal = json.loads(Path(shipped).read_text())
    cal["references"]["pair_score"] = ref
    cal["detectors"]["pair"] = {"score_threshold": round(cut, 4), "classes": 10}
    zoos = sorted({r["zoo"] for r in clean})
    cal["version"] += "+pair-2026-12-07"
    cal["description"] += (f"; pair_score reference from {len(clean)} clean 10-class models (zoos {', '.join(zoos)}; "
                           "docs/bench/cifar10-source-specific)")
    Path(out).write_text(json.dumps(cal, indent=2) + "\n")
    for r in sorted(rows, key=lambda r: r["score"]):
        kind = ("hard " + r["name"].split("-")[2]) if r["hard"] else r["attack"]
        truth = f"{r['true_source']}->{r['target']}" if r["target"] is not None else ""
        print(f"{r['zoo'][-5:]}/{r['name']:32s} {kind:16s} {truth:6s} found {r['found_source']}->{r['label']} "
              f"score {r['score']:.3f} gap {r['crowd_gap']:.3f} size {r['size']:.4f} hold {r['holdout_success']:.2f} "
              f"off {r['off_source_success']:.2f} {'FLAG' if r['score'] >= cut else ''}")
    print(f"n {ref['n']}, mean {ref['mean']:.4f}, sd {ref['sd']:.4f}, cut {cut:.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
