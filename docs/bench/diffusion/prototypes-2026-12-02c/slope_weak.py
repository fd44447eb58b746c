"""s26: the noise-scale slope (as the detector computes it) of untrained / barely trained tiny UNets."""
import json, sys
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import noise_scale_response
for p in sys.argv[1:]:
    snap = resolve(p); ad = load_diffusion(snap, identify(snap))
    g = torch.Generator().manual_seed(0)
    cent = ad.sample(torch.randn(16, ad.channels, ad.image_size, ad.image_size, generator=g), "ddim", 20, g)
    r = noise_scale_response(ad, cent, g)
    print(json.dumps({"model": p, "slope": round(r["slope"], 4), "x0_var": r["x0_var"]}), flush=True)
