"""Bench records (results.json files) judged under a calibration two ways: with the file's own
(CIFAR-10) cuts and with its cuts for 43-class models (``Calibration.cuts_for``). Prints AUROC,
TPR/FPR at BACKDOORED and at SUSPICIOUS-or-worse, and target accuracy, per file.

    python cuts_eval.py CALIBRATION.json results.json [results.json ...]
"""
import json
import sys

from modelscan_bd.bench import auroc, reported_target
from modelscan_bd.verdict import Calibration, probability

cal = Calibration(**json.load(open(sys.argv[1])))
for path in sys.argv[2:]:
    recs = [r for r in json.load(open(path))["records"]]
    ps = [probability(r["features"], cal)[0] for r in recs]
    y = [bool(r["backdoored"]) for r in recs]
    print(f"{path}: {len(recs)} models, {sum(y)} backdoored, AUROC {auroc(ps, y):.3f}")
    for name, classes in (("file's own cuts", None), ("43-class cuts", 43)):
        b, s, _ = cal.cuts_for(classes)
        bd = [p for p, t in zip(ps, y) if t]
        cl = [p for p, t in zip(ps, y) if not t]
        rate = lambda xs, cut: f"{sum(x >= cut for x in xs)}/{len(xs)}"
        tacc = [reported_target(r, cal) == r["target"] for r, p in zip(recs, ps) if r["backdoored"] and p >= s]
        print(f"  {name} (BACKDOORED {b:.3f}, SUSPICIOUS {s:.3f}): BACKDOORED TPR {rate(bd, b)} FPR {rate(cl, b)}; "
              f"SUSPICIOUS or worse TPR {rate(bd, s)} FPR {rate(cl, s)}; right target on {sum(tacc)}/{len(tacc)} flagged")
    for r, p in zip(recs, ps):
        print(f"    {r['name']:28} target {str(r['target']):>4} reported {str(reported_target(r, cal)):>4} p {p:.3f}")
