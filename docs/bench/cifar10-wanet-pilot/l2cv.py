"""Does a stronger L2 on the combiner transfer better? Choose by seed-CV on the CIFAR-10 fitting split only,
then look at the held-out split and the WaNet pilots (offline, committed records)."""
import json
import numpy as np
from modelscan_bd.bench import split, auroc, FEATURES
from modelscan_bd.verdict import fit_logistic

cif = json.load(open("../cifar10/results.json"))["records"]
fit, held = split(cif, ["blended"], [14, 15, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29])
pil = [r for s in (300, 301, 302) for r in json.load(open(f"results-seed{s}.json"))["records"]]

def score(params, rs):
    mean, scale, w, b, fill = params
    x = np.array([[r["features"].get(f) if r["features"].get(f) is not None else fill[f] for f in FEATURES] for r in rs])
    return list(((x - mean) / scale) @ np.array(w) + b)

def y(rs): return [int(r["backdoored"]) for r in rs]

for l2 in (0.3, 1, 3, 10, 30, 100):
    seeds = sorted({r["seed"] for r in fit})
    s_all, y_all = [], []
    for s in seeds:  # leave one training seed out
        tr = [r for r in fit if r["seed"] != s]; te = [r for r in fit if r["seed"] == s]
        p = fit_logistic([r["features"] for r in tr], y(tr), FEATURES, l2=l2)
        s_all += score(p, te); y_all += y(te)
    p = fit_logistic([r["features"] for r in fit], y(fit), FEATURES, l2=l2)
    print(f"l2 {l2:6}: fit-split seed CV AUROC {auroc(s_all, y_all):.3f} | held-out {auroc(score(p, held), y(held)):.3f}"
          f" | wanet pilots {auroc(score(p, pil), y(pil)):.3f} | w {np.round(p[2], 2)}")
