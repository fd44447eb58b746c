"""Prototype: warp-trigger inversion statistics on zoo models, for several max shifts."""
import json, sys, time
import torch
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.load_classifier import load_classifier
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.detectors.warp import WarpSettings, invert_warps, warp_success

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
zoo = sys.argv[1]
shifts = [float(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "1,2,3").split(",")]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 100
names = [n for n in (sys.argv[5] if len(sys.argv) > 5 else "").split(",") if n] or None
man = json.load(open(f"{zoo}/manifest.json"))
out = []
for e in man["models"]:
    if names and e["name"] not in names:
        continue
    snap = resolve(f"{zoo}/{e['path']}", lambda m: None)
    ad = load_classifier(snap, identify(snap))
    clean = load_clean_data(f"{zoo}/clean-data.npz", ad, budget=500, seed=0)
    row = {"name": e["name"], "attack": e["attack"], "target": e["target"], "asr": e["asr"]}
    for ms in shifts:
        t0 = time.time()
        g = torch.Generator().manual_seed(15)
        st = WarpSettings(steps=steps, images_per_step=320, max_shift=ms)
        params = invert_warps(ad.model, clean.exposure_images, clean.exposure_labels, ad.num_classes, st, g)
        rates = warp_success(ad.model, params, clean.holdout_images, clean.holdout_labels, ms)
        best = max(range(len(rates)), key=rates.__getitem__)
        ru = max(r for i, r in enumerate(rates) if i != best)
        row[f"s{ms:g}"] = {"label": best, "success": round(rates[best], 3), "gap": round(rates[best] - ru, 3),
                           "rates": [round(r, 3) for r in rates], "sec": round(time.time() - t0, 1)}
    out.append(row)
    print(json.dumps({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != 'rates'})
                      for k, v in row.items()}), flush=True)
json.dump(out, open(sys.argv[6] if len(sys.argv) > 6 else "/dev/null", "w"), indent=1)
