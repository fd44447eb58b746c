"""Target accuracy of bench records under the target rule with and without the MM-BD branch
(PLAN-mmbd.md). The rule without it is the same code given the record without its MM-BD label.

    python docs/bench/target-rule/score_mmbd.py [results.json ...]   # default: every committed record

Each record is judged by the shipped file of the budget it ran at (``bench.judge_for``); records that
carry no ``mmbd_label`` (scanned before it was recorded) cannot change and are left out.
"""
import collections
import glob
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from modelscan_bd import bench  # noqa: E402
from modelscan_bd.verdict import shipped_calibration  # noqa: E402


def records(files):
    seen = {}
    for f in files:
        try:
            d = json.load(open(f))
        except (OSError, ValueError):
            continue
        if not isinstance(d, dict) or not isinstance(d.get("records"), list):
            continue
        prov = d.get("provenance") or {}
        zoo = str(prov.get("zoo") or f).rstrip("/").split("/")[-1]
        for r in d["records"]:
            if (isinstance(r, dict) and "mmbd_label" in r and r.get("backdoored")
                    and r.get("type") in bench.TARGETED_TYPES):
                budget = r.get("budget") or prov.get("budget") or "standard"
                # a zoo's records repeat in pooled files (bench-pool), which name each "zoo/model"
                own_zoo, _, name = r["name"].rpartition("/")
                seen.setdefault((own_zoo or zoo, name, budget), r)
    return seen


def main(files):
    table = collections.defaultdict(lambda: [0, 0, 0])
    changed = []
    for (zoo, name, budget), r in sorted(records(files).items()):
        judge = bench.judge_for(r, shipped_calibration(budget))
        old = bench.reported_target({**r, "mmbd_label": None}, judge)
        new = bench.reported_target(r, judge)
        row = table[(zoo if len(files) < 10 else "-", budget, bench.record_architecture(r), r["attack"])]
        row[0] += 1
        row[1] += old == r["target"]
        row[2] += new == r["target"]
        if old != new:
            how = "better" if new == r["target"] else "worse" if old == r["target"] else "both wrong"
            changed.append(f"  {zoo} {name} ({budget}): target {r['target']}, old {old}, new {new}: {how}")
    print("zoo, budget, architecture, attack: targeted backdoors, right without the MM-BD branch, right with it")
    for key, (n, old, new) in sorted(table.items(), key=str):
        print(f"  {', '.join(str(k) for k in key)}: {n}, {old}, {new}")
    n, old, new = (sum(v[i] for v in table.values()) for i in range(3))
    print(f"all: {n}, {old}, {new}")
    print("changed:" if changed else "changed: none")
    print("\n".join(changed))


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(glob.glob(str(ROOT / "docs/bench/**/*.json"), recursive=True)))
