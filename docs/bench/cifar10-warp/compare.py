"""The bench records of the WaNet zoos scored twice under the shipped calibration: as shipped
(combiner, or the warp reference test where larger) and by the combiner alone (as before the
warp detector), with the bench's own metrics.

    python compare.py bench-seed300.json bench-seed301.json ...
"""
import json
import sys

from modelscan_bd.bench import auroc
from modelscan_bd.verdict import combiner_probability, load_calibration, probability


def main(paths: list[str]) -> None:
    cal = load_calibration(budget="standard")
    out = {}
    for name, score in (("shipped", lambda f: probability(f, cal)[0]),
                        ("combiner alone", lambda f: combiner_probability(f, cal)[0])):
        rows, labels = [], []
        for path in paths:
            for r in json.load(open(path))["records"]:
                rows.append(score(r["features"]))
                labels.append(int(r["backdoored"]))
        flagged = [p >= cal.backdoored_threshold for p in rows]
        out[name] = {"models": len(rows), "wanet": sum(labels), "auroc": round(auroc(rows, labels), 4),
                     "tpr": round(sum(f for f, y in zip(flagged, labels) if y) / sum(labels), 4),
                     "fpr": round(sum(f for f, y in zip(flagged, labels) if not y) / (len(labels) - sum(labels)), 4)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
