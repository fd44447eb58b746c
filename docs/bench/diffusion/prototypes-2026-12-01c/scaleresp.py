"""s18: noise-scale response: diversity of DDIM samples from gamma*eps relative to eps, every zoo model."""
import json, sys, time, math
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import structured_dup, mean_pairwise

for zoo in map(Path, sys.argv[1:]):
    man = json.loads((zoo / "manifest.json").read_text())
    for e in man["models"]:
        t0 = time.time()
        snap = resolve(str(zoo / e["path"]))
        ad = load_diffusion(snap, identify(snap))
        shape = (ad.channels, ad.image_size, ad.image_size)
        g = torch.Generator().manual_seed(0)
        out = {"zoo": zoo.name, "name": e["name"]}
        base = {}
        for smp, steps in (("ddim", 20), ("ddpm", 100)):
            for gam in (1.0, 0.8, 0.6, 0.4):
                imgs = ad.sample(gam * torch.randn(16, *shape, generator=g), smp, steps, g)
                mp = mean_pairwise(imgs)
                if gam == 1.0:
                    base[smp] = mp
                out[f"{smp}{gam}"] = [round(math.log(max(mp, 1e-6) / base[smp]), 2), round(structured_dup(imgs), 2)]
        out["s"] = round(time.time() - t0, 1)
        print(json.dumps(out), flush=True)
