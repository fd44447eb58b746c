"""Zoo gtsrb30-s740 (GTSRB's first 30 signs), a check registered before it was built: the shipped files
(whose 43-class entry applies from 20 classes since the 20-class zoo) against A, the files shipped before
(CIFAR-10 weights below 43 classes), at each budget. Nothing is refitted or changed by what it shows.

    python docs/bench/gtsrb20/blind_gtsrb30.py > docs/bench/gtsrb20/blind_gtsrb30.txt
"""
import json
import statistics

from blind_gtsrb20 import HERE, baselines, before, evaluate

from modelscan_bd.verdict import load_calibration

CLASSES = 30
RUNS = {"standard": "results-s740.json", "fast": "results-s740-fast.json"}


def main():
    for budget, results in RUNS.items():
        run = json.loads((HERE / results).read_text())
        recs = run["records"]
        shipped = load_calibration(budget=budget)
        print(f"--- {results}: scanned at {budget}, {statistics.mean(r['seconds'] for r in recs):.1f} s per model")
        evaluate(f"shipped ({shipped.version})", recs, shipped, CLASSES)
        evaluate("A, before (CIFAR-10 weights below 43 classes)", recs, before(budget), CLASSES)
        baselines(run)
        print()


if __name__ == "__main__":
    main()
