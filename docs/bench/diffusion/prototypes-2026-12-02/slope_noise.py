"""s24: seed-to-seed spread of the noise-scale slope, as the detector computes it, for centre/draw counts."""
import json, sys, statistics
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import noise_scale_response
names = sys.argv[1:]
for path in names:
    snap = resolve(path); ad = load_diffusion(snap, identify(snap))
    for nc, nd in ((8, 16), (16, 32)):
        vals = []
        for seed in range(5):
            g = torch.Generator().manual_seed(1000 + seed)
            cent = ad.sample(torch.randn(nc, 1, 16, 16, generator=g), "ddim", 20, g)
            vals.append(noise_scale_response(ad, cent, g, draws=nd)["slope"])
        print(Path(path).name, nc, nd, round(statistics.mean(vals), 3), round(statistics.stdev(vals), 3), [round(v, 2) for v in vals], flush=True)
