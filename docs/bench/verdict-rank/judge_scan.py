"""PLAN.md's test: a bench scan's records judged by the shipped rule and by `ranked` (the shipped calibration
plus the combiner's clean tail fitted on the development rows, ``add_tail.py``), from the same features.

    PYTHONPATH=. python docs/bench/verdict-rank/judge_scan.py runs/scan-s2890/results.json
"""
import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rank_lozo import ARCH, FITTING_ZOOS, dev_rows, group  # noqa: E402

from modelscan_bd.bench import auroc, tpr_at_fpr  # noqa: E402
from modelscan_bd.verdict import REFERENCE_ALPHA, fit_combiner_tail, load_calibration, probability, status_for  # noqa: E402


def main(path: str) -> None:
    records = json.loads(Path(path).read_text())["records"]
    shipped = load_calibration(budget="standard")
    shipped.combiner_tail = {}  # the rule before (the shipped file holds the tail since this test passed)
    ranked = copy.deepcopy(shipped)
    dev = [r["features"] for r in dev_rows() if group(r) == "clean" and r["zoo"] not in FITTING_ZOOS]
    ranked.combiner_tail = fit_combiner_tail(dev, shipped, REFERENCE_ALPHA)
    y = [int(r["backdoored"]) for r in records]
    print(f"{len(records)} models: {sum(y)} backdoored, {len(y) - sum(y)} clean "
          f"({sum(bool(r.get('hard')) for r in records)} hard); combiner tail from {ranked.combiner_tail['n']} clean")
    statuses = {}
    for name, cal in (("shipped", shipped), ("ranked", ranked)):
        p = [probability(r["features"], cal, 10, ARCH)[0] for r in records]
        statuses[name] = [status_for(v, shipped, False, 10, ARCH) for v in p]
        ss = [v for r, v in zip(records, p) if r["attack"] == "source_specific"]
        clean = [v for r, v in zip(records, p) if not r["backdoored"] and not r.get("hard")]
        ss_auroc = auroc(ss + clean, [1] * len(ss) + [0] * len(clean)) if ss else None
        print(f"  {name}: AUROC {auroc(p, y):.3f}, TPR@5%FPR {tpr_at_fpr(p, y):.3f}; source-specific against "
              f"ordinary clean {'-' if ss_auroc is None else f'{ss_auroc:.3f}'}; flagged "
              f"{sum(s != 'CLEAN' for s, b in zip(statuses[name], y) if b)}/{sum(y)}, clean "
              f"{sum(s != 'CLEAN' for s, b in zip(statuses[name], y) if not b)}/{len(y) - sum(y)}")
        for r, v in sorted(zip(records, p), key=lambda x: -x[1]):
            print(f"    {v:.4f} {r['name']}{' (hard)' if r.get('hard') else ''}")
    moved = sum(a != b for a, b in zip(statuses["shipped"], statuses["ranked"]))
    print(f"  statuses that differ: {moved} of {len(records)}")


if __name__ == "__main__":
    main(sys.argv[1])
