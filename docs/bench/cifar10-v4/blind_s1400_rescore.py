"""Blind zoo s1400 (BLIND-s1400.md): each file scored on the same records. Usage:
    git show 392bc11:modelscan_bd/calibration/classifier-fast.json > /tmp/old-fast.json
    python docs/bench/cifar10-v4/blind_s1400_rescore.py /tmp/old-fast.json
"""
import sys
import json
from modelscan_bd import bench, verdict
D = "docs/bench/cifar10-v4/"
rows = []
for budget, files in (("standard", [("shipped classifier.json", None), ("v4 standard refit (not shipped)", D + "calibration-standard-refit.json")]),
                      ("fast", [("shipped classifier-fast.json (v4 refit)", None), ("fast file before (392bc11)", sys.argv[1])])):
    recs = json.load(open(f"docs/bench/cifar10-v4/blind-s1400-{budget}.json"))["records"]
    for name, path in files:
        cal = verdict.load_calibration(path, budget=budget)
        m = bench.metrics(recs, cal, 10)
        bd = [r for r in recs if r["backdoored"]]; cl = [r for r in recs if not r["backdoored"]]
        fl = lambda r: bench.model_probability(r, cal, 10) >= cal.backdoored_threshold
        print(f"{budget:8s} {name:42s} AUROC {m['auroc']:.3f} TPR {sum(map(fl, bd))}/{len(bd)} FPR {sum(map(fl, cl))}/{len(cl)} "
              f"target {m['target_accuracy']:.3f} s {m['seconds_per_model']:.1f}")
    for base in ("neural_cleanse", "ebyd_variance"):
        sc = [r[base]["score"] for r in recs]; y = [int(r["backdoored"]) for r in recs]
        fl = [r[base]["flagged"] for r in recs]
        print(f"{budget:8s} {base:42s} AUROC {bench.auroc(sc, y):.3f} TPR {sum(f for f, t in zip(fl, y) if t)}/{sum(y)} "
              f"FPR {sum(f for f, t in zip(fl, y) if not t)}/{len(y) - sum(y)} s {sum(r[base]['seconds'] for r in recs) / len(recs):.1f}")
    for r in recs:
        cal = verdict.load_calibration(budget=budget)
        print(f"   {r['name']:28s} bd={int(r['backdoored'])} {r['attack']:16s} p={bench.model_probability(r, cal, 10):.3f}")
