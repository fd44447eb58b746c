"""Blind zoo s1400 (BLIND-s1400.md): each file scored on the same records by ``bench.metrics``. Usage:

    git show 392bc11:modelscan_bd/calibration/classifier-fast.json > /tmp/old-fast.json
    python docs/bench/cifar10-v4/blind_s1400_rescore.py /tmp/old-fast.json
"""
import json
import sys

from modelscan_bd import bench, verdict

HERE = "docs/bench/cifar10-v4/"
FILES = {"standard": [("shipped classifier.json", None),
                      ("v4 standard refit (not shipped)", HERE + "calibration-standard-refit.json")],
         "fast": [("shipped classifier-fast.json (v4 refit)", None), ("fast file before (392bc11)", sys.argv[1])]}


def line(budget: str, name: str, m: dict, n_bd: int, n_clean: int) -> str:
    return (f"{budget:8s} {name:42s} AUROC {m['auroc']:.3f} TPR {round(m['tpr'] * n_bd)}/{n_bd} "
            f"FPR {round(m['fpr'] * n_clean)}/{n_clean} target {m['target_accuracy']:.3f} "
            f"s {m['seconds_per_model']:.1f}")


for budget, files in FILES.items():
    records = json.load(open(f"{HERE}blind-s1400-{budget}.json"))["records"]
    for name, path in files:
        m = bench.metrics(records, verdict.load_calibration(path, budget=budget), 10)
        print(line(budget, name, m, m["backdoored"], m["clean"]))
    for base in ("neural_cleanse", "ebyd_variance"):
        print(line(budget, base, m[base], m["backdoored"], m["clean"]))
    shipped = verdict.load_calibration(budget=budget)
    for r in records:
        p = bench.model_probability(r, shipped, 10)
        print(f"   {r['name']:28s} bd={int(r['backdoored'])} {r['attack']:16s} p={p:.3f}")
