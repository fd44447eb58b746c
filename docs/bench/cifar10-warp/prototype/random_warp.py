"""Per-label success of random smooth warps (the same bound) - a baseline for the natural sink label."""
import sys, torch
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.load_classifier import load_classifier
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.detectors.warp import displacement, warp
torch.set_num_threads(1)
zoo, ms = sys.argv[1], float(sys.argv[2])
for name in sys.argv[3].split(","):
    snap = resolve(f"{zoo}/models/{name}", lambda m: None)
    ad = load_classifier(snap, identify(snap))
    clean = load_clean_data(f"{zoo}/clean-data.npz", ad, budget=500, seed=0)
    x, y = clean.holdout_images, clean.holdout_labels
    g = torch.Generator().manual_seed(0)
    params = torch.randn(20, 2, 4, 4, generator=g) * 3  # mostly saturated: control points near +-bound
    off = displacement(params, 32, 32, ms)
    with torch.no_grad():
        base = ad.model(x).argmax(1)
        counts = torch.zeros(10)
        for i in range(20):
            pred = ad.model(warp(x, off[i:i + 1])).argmax(1)
            for t in range(10):
                keep = y != t
                counts[t] += float((pred[keep] == t).float().mean()) / 20
    print(name, "acc", round(float((base == y).float().mean()), 3), "random-warp success by label", [round(float(c), 3) for c in counts])
