"""Judge bench records by the shipped standard file and by the candidate (feature_gap reference).

    python judge.py [--shipped FILE] [--candidate FILE] RESULTS.json [RESULTS.json ...]

Per model: gap, its label, p and verdict both ways, reported target both ways; then the plan's
ship-rule counts over all the files' records.
"""
import json
import sys
from pathlib import Path

from modelscan_bd.bench import metrics, model_probability, record_architecture, record_classes, reported_target
from modelscan_bd.verdict import load_calibration

HERE = Path(__file__).parent
# The shipped file as of 1473f28, read from this folder: run from the candidate tree, the package's own
# classifier.json is the candidate's.
SHIPPED = load_calibration(HERE / "classifier-shipped.json")
CANDIDATE = load_calibration(HERE / "classifier-candidate.json")


def options(argv: list[str]) -> list[str]:
    """--shipped/--candidate FILE replace the two files above (a later comparison's pair)."""
    global SHIPPED, CANDIDATE
    while argv and argv[0] in ("--shipped", "--candidate"):
        cal = load_calibration(Path(argv[1]))
        if argv[0] == "--shipped":
            SHIPPED = cal
        else:
            CANDIDATE = cal
        argv = argv[2:]
    return argv


def flagged(record, cal) -> bool:
    backdoored, _, _ = cal.cuts_for(record_classes(record, None), record_architecture(record))
    return model_probability(record, cal) >= backdoored


def main(files: list[str]) -> None:
    records = []
    for f in files:
        records += json.load(open(f))["records"]
    print(f"{'model':36s} {'target':>6s} {'gap':>6s} {'label':>5s} | shipped p, flag, target | candidate p, flag, target")
    for r in records:
        row = []
        for cal in (SHIPPED, CANDIDATE):
            row.append(f"{model_probability(r, cal):.3f} {'B' if flagged(r, cal) else '-'} {reported_target(r, cal)}")
        gap = r["features"].get("feature_gap")
        print(f"{r['name']:36s} {str(r['target']):>6s} {'-' if gap is None else f'{gap:.3f}':>6s} "
              f"{str(r.get('feature_label')):>5s} | {row[0]:22s} | {row[1]}")
    normal = [r for r in records if not r["backdoored"] and not r["hard"]]
    hard = [r for r in records if r["hard"]]
    bad = [r for r in records if r["backdoored"]]
    for name, group in (("normal clean flagged", normal), ("hard clean flagged", hard), ("backdoored flagged", bad)):
        print(f"{name}: shipped {sum(flagged(r, SHIPPED) for r in group)}/{len(group)}, "
              f"candidate {sum(flagged(r, CANDIDATE) for r in group)}/{len(group)}")
    both = [r for r in bad if flagged(r, SHIPPED) and flagged(r, CANDIDATE) and r["target"] is not None]
    for name, cal in (("shipped", SHIPPED), ("candidate", CANDIDATE)):
        right = sum(reported_target(r, cal) == r["target"] for r in both)
        m = metrics(records, cal)
        print(f"{name}: targets right on {right}/{len(both)} flagged by both; AUROC {m.get('auroc')}, "
              f"TPR@5%FPR {m.get('tpr_at_5fpr')}")
    gained = [r["name"] for r in bad if flagged(r, CANDIDATE) and not flagged(r, SHIPPED)]
    print(f"backdoored flagged by the candidate only: {len(gained)} {gained}")
    secs = [r["steps"].get("feature-trigger") for r in records if r["steps"].get("feature-trigger") is not None]
    if secs:
        print(f"feature-trigger step: {sum(secs) / len(secs):.2f} s mean over {len(secs)}; "
              f"scan {sum(r['seconds'] for r in records) / len(records):.1f} s per model")


if __name__ == "__main__":
    main(options(sys.argv[1:]))
