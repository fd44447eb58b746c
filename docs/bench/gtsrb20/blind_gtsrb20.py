"""Zoo gtsrb20-s720 (GTSRB's first 20 signs; never seen by any fit), scanned at each budget and scored under
candidate A, the shipped calibration as it was (calibration-before*.json: CIFAR-10 weights and cuts below 43
classes), and candidate B, the same file with its 43-class entry applying from 20 classes, with the rule in
PREREGISTERED.md: B ships at a budget only if its AUROC is at least A's, its BACKDOORED TPR - FPR at least
A's and its FPR at most 1/8.

    python docs/bench/gtsrb20/blind_gtsrb20.py > docs/bench/gtsrb20/blind_gtsrb20.txt
    python docs/bench/gtsrb20/blind_gtsrb20.py --write   # B, built from the files before, into both shipped files
"""
import argparse
import copy
import json
import statistics
from pathlib import Path

from modelscan_bd.bench import auroc, reported_target
from modelscan_bd.verdict import load_calibration, probability

HERE = Path(__file__).resolve().parent
CLASSES = 20
RUNS = {"standard": "results-s720.json", "fast": "results-s720-fast.json"}


def before(budget):
    """The file that budget shipped when the zoo was scanned (A)."""
    name = "calibration-before.json" if budget == "standard" else "calibration-before-fast.json"
    return load_calibration(HERE / name)


def from_twenty(cal, stamp=None):
    """``cal`` with its 43-class entry (combiner and cuts) applying from 20 classes; ``stamp`` (a date)
    also names the change in its version and description, for the shipped file."""
    out = copy.deepcopy(cal)
    (entry,) = [c for c in out.class_cuts if c["min_classes"] == 43]
    entry["min_classes"] = CLASSES
    if stamp:
        out.version += f"+from{CLASSES}-{stamp}"
        entry["description"] += (f"; fitted for 43 classes, applied from {CLASSES} since {stamp} by the preregistered "
                                 f"rule on a {CLASSES}-class GTSRB zoo (docs/bench/gtsrb20)")
    return out


def write():
    from modelscan_bd import verdict

    folder = Path(verdict.__file__).resolve().parent / "calibration"
    for budget, name in (("standard", "classifier.json"), ("fast", "classifier-fast.json")):
        cal = before(budget)
        (folder / name).write_text(from_twenty(cal, "2026-12-04").to_json())


def evaluate(label, recs, cal, classes=CLASSES):
    cut = cal.cuts_for(classes)[0]
    p = [probability(r["features"], cal, classes)[0] for r in recs]
    y = [int(r["backdoored"]) for r in recs]
    tp = sum(q >= cut for q, t in zip(p, y) if t)
    fp = sum(q >= cut for q, t in zip(p, y) if not t)
    nb, nc = sum(y), len(y) - sum(y)
    right = sum(reported_target(r, cal) == r["target"] for r in recs if r["backdoored"])
    a = auroc(p, y)
    print(f"{label}: {len(recs)} models, AUROC {a:.3f}, BACKDOORED (p >= {cut:.3f}) TPR {tp}/{nb} FPR {fp}/{nc}, "
          f"right targets {right}/{nb}")
    for r, q in zip(recs, p):
        print(f"  {r['name']:26} target {str(r['target']):>4}  candidate {str(r['candidate']):>4}  p {q:.3f}")
    return a, tp / nb - fp / nc, fp, nc


def baselines(run):
    """The baselines the bench run measured in the same process, if it ran them."""
    for name in ("neural_cleanse", "ebyd_variance"):
        if name in run["metrics"]:
            m = run["metrics"][name]
            print(f"  {name}: AUROC {m['auroc']:.3f}, TPR {m['tpr']:.3f}, FPR {m['fpr']:.3f}, target accuracy "
                  f"{m['target_accuracy']:.3f}, {m['seconds_per_model']:.1f} s per model")


def main():
    for budget, results in RUNS.items():
        path = HERE / results
        if not path.exists():
            print(f"--- {results}: not scanned\n")
            continue
        run = json.loads(path.read_text())
        recs = run["records"]
        shipped = before(budget)
        print(f"--- {results}: scanned at {budget}, {statistics.mean(r['seconds'] for r in recs):.1f} s per model; "
              f"shipped file {shipped.version}")
        a_auc, a_j, _, _ = evaluate("A, shipped (CIFAR-10 weights below 43 classes)", recs, shipped)
        b_auc, b_j, b_fp, nc = evaluate("B, the 43-class entry from 20 classes", recs, from_twenty(shipped))
        ship = b_auc >= a_auc and b_j >= a_j and b_fp * 8 <= nc
        print(f"Rule: AUROC {b_auc:.3f} >= {a_auc:.3f}, TPR-FPR {b_j:.3f} >= {a_j:.3f}, FPR {b_fp}/{nc} <= 1/8: "
              f"{'B ships' if ship else 'A stays'}")
        baselines(run)
        print()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    write() if ap.parse_args().write else main()
