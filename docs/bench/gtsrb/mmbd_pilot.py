"""Pilot: MM-BD with fewer images per class on 43-class GTSRB models vs the stored n=16 feature."""
import json, math, sys, time
import numpy as np, torch
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.scan import FAMILY_SCANNERS
from modelscan_bd.detectors.mmbd import search_margins, gamma_order_test

torch.set_num_threads(2)
n = int(sys.argv[1]); steps = int(sys.argv[2])
out = []
for zoo, res in [("/work/zoo/gtsrb-s400", "docs/bench/gtsrb/results.json"),
                 ("/work/zoo/gtsrb-s420", "docs/bench/gtsrb/results-blind-s420.json")]:
    recs = json.load(open(res))["records"]
    for r in recs:
        snap = resolve(f"{zoo}/models/{r['name']}")
        fam = identify(snap)
        ad = FAMILY_SCANNERS[fam.name][0](snap, fam)
        g = torch.Generator(); g.manual_seed(0 * 1_000_003 + 30)
        t = time.perf_counter()
        s = search_margins(ad.model, ad.num_classes, tuple(ad.input_size), n, steps, g)
        dt = time.perf_counter() - t
        test = gamma_order_test(s.margins)
        f = min(10.0, -math.log10(max(test.p_value, 1e-300)))
        row = dict(zoo=zoo[-4:], name=r["name"], bd=r["backdoored"], attack=r["attack"], target=r["target"],
                   old=r["features"]["mmbd_neglog10_p"], new=round(f, 4), new_target=test.target, s=round(dt, 1))
        print(row, flush=True); out.append(row)
json.dump(out, open(f"/work/runs/s31/mmbd_n{n}_s{steps}.json", "w"), indent=1)
def auroc(rows, key):
    pos = [r[key] for r in rows if r["bd"]]; neg = [r[key] for r in rows if not r["bd"]]
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
a2o = [r for r in out if r["attack"] in ("clean", "badnets", "blended")]
print("AUROC all old %.3f new %.3f | all-to-one old %.3f new %.3f | mean s %.1f" % (
    auroc(out, "old"), auroc(out, "new"), auroc(a2o, "old"), auroc(a2o, "new"), np.mean([r["s"] for r in out])))
print("target right (new):", sum(r["new_target"] == r["target"] for r in a2o if r["bd"]), "of", sum(r["bd"] for r in a2o))
