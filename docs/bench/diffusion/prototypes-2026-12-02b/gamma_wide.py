"""s24: the x0-variance profile over gamma at t = 0.6 T (16 centres x 32 draws), as the detector computes it."""
import json, sys, math
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import noise_scale_response
G = (0.4, 0.6, 0.8, 1.0, 1.25, 1.5)
for zoo in map(Path, sys.argv[1:]):
    man = json.loads((zoo / "manifest.json").read_text())
    for e in man["models"]:
        snap = resolve(str(zoo / e["path"])); ad = load_diffusion(snap, identify(snap))
        g = torch.Generator().manual_seed(0)
        cent = ad.sample(torch.randn(16, 1, 16, 16, generator=g), "ddim", 20, g)
        r = noise_scale_response(ad, cent, g, gammas=G)
        v = r["x0_var"]
        prof = [round(math.log(v[str(a)] / v["1.0"]), 2) for a in G]
        print(json.dumps({"zoo": zoo.name, "name": e["name"], "gamma": e.get("gamma"), "attack": e.get("attack"), "log_v_over_v1": prof}), flush=True)
