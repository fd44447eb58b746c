"""Blind zoo s680 (never seen by either calibration), scanned at each budget and scored under the
calibration that budget shipped before (CIFAR-10 weights, 43-class cuts) and under the 43-class combiner
candidate (manyclass/), with the rule written in cuts-preregistered.md before the zoo was scanned: ship
the candidate only if its BACKDOORED FPR here is at most 1/6 and its AUROC at least the shipped file's
minus 0.05.

    python docs/bench/gtsrb/blind_s680.py > docs/bench/gtsrb/blind_s680.txt
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "manyclass"))
import fit_manyclass as mc  # noqa: E402

from modelscan_bd.bench import reported_target  # noqa: E402


def main():
    for name, results in (("standard", "results-blind-s680.json"), ("fast", "results-blind-s680-fast.json")):
        budget = mc.Budget(name)
        recs = json.loads((HERE / results).read_text())["records"]
        gtsrb = budget.gtsrb_records()
        candidate = mc.fit(budget, gtsrb, budget.cifar_fitting_split())
        print(f"--- {results}: scanned at {name}")
        out = []
        for label, cal in (("before (CIFAR-10 weights, 43-class cuts)", budget.before), ("43-class combiner", candidate)):
            scored = mc.score(recs, cal)
            a, tp, nb, fp, nc = mc.tally(scored)
            right = sum(reported_target(r, cal) == r["target"] for r in recs if r["backdoored"])
            out.append((a, fp, nc))
            print(f"{label}: {len(recs)} models, AUROC {a:.3f}, BACKDOORED (p >= {scored[0]['cut']:.3f}) "
                  f"TPR {tp}/{nb} FPR {fp}/{nc}, right targets {right}/{nb}")
            for r in scored:
                print(f"  {r['name']:26} target {str(r['target']):>4}  candidate {r['candidate']:>2}  p {r['q']:.3f}")
        (a0, _, _), (a1, fp1, nc1) = out
        ship = fp1 * 6 <= nc1 and a1 >= a0 - 0.05
        print(f"Rule: FPR {fp1}/{nc1} <= 1/6 and AUROC {a1:.3f} >= {a0:.3f} - 0.05: {'ship' if ship else 'do not ship'}\n")


if __name__ == "__main__":
    main()
