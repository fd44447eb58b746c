"""Blind check: a bench results.json scored under given calibrations (AUROC, TPR@5%FPR, TPR, FPR, target acc)."""
import json, sys
from modelscan_bd.bench import auroc, tpr_at_fpr
from modelscan_bd.verdict import Calibration, load_calibration, probability

res = json.load(open(sys.argv[1]))
recs = [r for r in res["records"]]
cals = [("shipped standard", load_calibration(budget="standard"))]
cals += [(f, Calibration(**json.load(open(f)))) for f in sys.argv[2:]]
for name, cal in cals:
    ps = [probability(r["features"], cal)[0] for r in recs]
    y = [bool(r["backdoored"]) for r in recs]
    bd = [p for p, t in zip(ps, y) if t]; cl = [p for p, t, r in zip(ps, y, recs) if not t]
    tpr = sum(p >= cal.backdoored_threshold for p in bd) / max(1, len(bd))
    susp = sum(p >= cal.suspicious_threshold for p in bd) / max(1, len(bd))
    fpr = sum(p >= cal.backdoored_threshold for p in cl) / max(1, len(cl))
    fprs = sum(p >= cal.suspicious_threshold for p in cl) / max(1, len(cl))
    tacc = sum(r["suspected"][:1] == [r["target"]] for r in recs if r["backdoored"]) / max(1, len(bd))
    print(f"{name}: n={len(recs)} bd={len(bd)} AUROC {auroc(ps, y):.3f} TPR@5%FPR {tpr_at_fpr(ps, y, 0.05):.3f} "
          f"TPR {tpr:.3f} FPR {fpr:.3f} | at SUSPICIOUS: TPR {susp:.3f} FPR {fprs:.3f} | target acc {tacc:.3f}")
    for r, p in zip(recs, ps):
        print(f"   {r['name']:28} target {str(r['target']):>4} suspected {r['suspected'][:1]} p {p:.3f}")
