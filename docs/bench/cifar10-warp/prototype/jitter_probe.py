"""Warp inversion at 2 px, then: does per-pixel jitter (WaNet's noise mode, up to 0.5 px) kill the best field?"""
import json, sys, torch
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.load_classifier import load_classifier
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.detectors.warp import WarpSettings, invert_warps, warp_success, displacement, warp
torch.set_num_threads(1)
zoo, names = sys.argv[1], sys.argv[2].split(",")
for name in names:
    snap = resolve(f"{zoo}/models/{name}", lambda m: None)
    ad = load_classifier(snap, identify(snap))
    clean = load_clean_data(f"{zoo}/clean-data.npz", ad, budget=500, seed=0)
    st = WarpSettings(steps=100, images_per_step=320, max_shift=2.0)
    params = invert_warps(ad.model, clean.exposure_images, clean.exposure_labels, 10, st, torch.Generator().manual_seed(15))
    rates = warp_success(ad.model, params, clean.holdout_images, clean.holdout_labels, 2.0)
    t = max(range(10), key=rates.__getitem__)
    x, y = clean.holdout_images, clean.holdout_labels
    keep = y != t
    off = displacement(params[t:t + 1], 32, 32, 2.0)
    g = torch.Generator().manual_seed(1)
    jit = []
    with torch.no_grad():
        for _ in range(5):
            noise = (torch.rand(int(keep.sum()), 32, 32, 2, generator=g) * 2 - 1) / 32
            jit.append(float((ad.model(warp(x[keep], off + noise)).argmax(1) == t).float().mean()))
    print(json.dumps({"zoo": zoo.split("/")[-1], "name": name, "label": t, "success": round(rates[t], 3),
                      "jittered": round(sum(jit) / len(jit), 3)}), flush=True)
