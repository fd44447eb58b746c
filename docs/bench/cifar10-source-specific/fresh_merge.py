"""The committed bench records of the fresh zoos (`../heldout-v5/results-s2750.json`, `-s2760.json`) with
`pair-trigger`'s feature, label and source added from `measure.py` rows of the same models (rows without a score get it
from their gap and successes) (the detector
alone on the scan path, same seed and clean data: its own generator stream, so the other detectors'
features are those the full scan measured). Writes one results file per zoo for `bench-pool`.

    python docs/bench/cifar10-source-specific/fresh_merge.py ROWS.jsonl [ROWS.jsonl ...] --out DIR
"""
import argparse
import json
from pathlib import Path

from modelscan_bd.detectors.pair import pair_score

HERE = Path(__file__).parent
ap = argparse.ArgumentParser()
ap.add_argument("rows", nargs="+", type=Path)
ap.add_argument("--out", type=Path, required=True)
args = ap.parse_args()
rows = {(r["zoo"], r["name"]): r for f in args.rows for r in map(json.loads, f.open())}
args.out.mkdir(parents=True, exist_ok=True)
for zoo in ("s2750", "s2760"):
    d = json.loads((HERE.parent / "heldout-v5" / f"results-{zoo}.json").read_text())
    for rec in d["records"]:
        r = rows[(f"cifar10-heldout-{zoo}", rec["name"])]
        rec["features"]["pair_score"] = r.get("score", pair_score(r["crowd_gap"], r["holdout_success"],
                                                                    r["off_source_success"]))
        rec["pair_label"], rec["pair_source"] = r["label"], r["found_source"]
    (args.out / f"results-{zoo}.json").write_text(json.dumps(d, indent=1) + "\n")
    print(zoo, len(d["records"]), "records")
