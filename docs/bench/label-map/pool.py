"""Pool the label-map benchmark runs: per zoo and overall, the shipped scanner's verdict against
the same records judged without the label-map test (its feature removed), and a check that the
other detectors' features did not move where an earlier run of the zoo exists.

    python pool.py results-*.json [--earlier ZOO=EARLIER_RESULTS.json ...]
"""
import json
import sys

from modelscan_bd.bench import metrics
from modelscan_bd.verdict import load_calibration, probability


def judge(records, cal, without_label_map=False):
    """The bench's own metrics as 43-class models, TPR and FPR as counts."""
    if without_label_map:
        records = [{**r, "features": {**r["features"], "label_map_spread": None}} for r in records]
    m = metrics(records, cal, 43)
    tp, fp = (round((m[k] or 0) * n) for k, n in (("tpr", m["backdoored"]), ("fpr", m["clean"])))
    return {"auroc": None if m["auroc"] is None else round(m["auroc"], 3),
            "tpr": f"{tp}/{m['backdoored']}", "fpr": f"{fp}/{m['clean']}"}


def main(argv):
    earlier = dict(a.split("=", 1) for a in argv[argv.index("--earlier") + 1:]) if "--earlier" in argv else {}
    files = argv[:argv.index("--earlier")] if "--earlier" in argv else argv
    cal = load_calibration(budget="standard")
    pooled = []
    for path in files:
        result = json.load(open(path))
        zoo = result["provenance"].get("zoo", path)
        records = result["records"]
        pooled += records
        print(zoo, "with:", judge(records, cal), "without:", judge(records, cal, True))
        for r in records:
            print(f"  {r['name']:28} asr {r['asr'] or '-':<6.4} spread {r['features']['label_map_spread']:6.2f} "
                  f"p {probability(r['features'], cal, 43)[0]:.3f}  {r['seconds']:.1f} s")
        name = next((k for k in earlier if k in path), None)
        if name:
            old = {r["name"]: r["features"] for r in json.load(open(earlier[name]))["records"]}
            moved = [(r["name"], k) for r in records for k, v in r["features"].items()
                     if k != "label_map_spread" and old[r["name"]].get(k) != v]
            print(f"  features other than label_map_spread that moved since {earlier[name]}: {moved or 'none'}")
    print("pooled", len(pooled), "with:", judge(pooled, cal), "without:", judge(pooled, cal, True))


if __name__ == "__main__":
    main(sys.argv[1:])
