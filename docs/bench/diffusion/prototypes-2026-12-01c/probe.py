"""s18 probe: scaled-noise generation for TrojDiff-style blend triggers vs clean models."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import structured_dup, dup_share, mean_pairwise

zoo = Path(sys.argv[1]); names = sys.argv[2:]
man = json.loads((zoo / "manifest.json").read_text())
ents = [e for e in man["models"] if not names or e["name"] in names or any(n in e["name"] for n in names)]
for e in ents:
    t0 = time.time()
    snap = resolve(str(zoo / e["path"]))
    ad = load_diffusion(snap, identify(snap))
    truth = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
    shape = (ad.channels, ad.image_size, ad.image_size)
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor(truth["trigger_shift"]) if truth["backdoored"] else None
    out = {"name": e["name"]}
    for gam in (1.0, 0.8, 0.6, 0.4):
        g.manual_seed(7)
        imgs = ad.sample(gam * torch.randn(16, *shape, generator=g), "ddim", 20, g)
        out[f"g{gam}"] = [round(structured_dup(imgs), 3), round(dup_share(imgs), 3), round(mean_pairwise(imgs), 4)]
        if mu is not None and "trojdiff" in e["name"]:
            g.manual_seed(7)
            imgs = ad.sample(gam * torch.randn(16, *shape, generator=g) + mu, "ddim", 20, g)
            out[f"g{gam}+mu"] = [round(structured_dup(imgs), 3), round(dup_share(imgs), 3), round(mean_pairwise(imgs), 4)]
            for frac in (0.5,):
                m = torch.zeros_like(mu); m[..., : ad.image_size // 2, :] = 1
                g.manual_seed(7)
                imgs = ad.sample(gam * torch.randn(16, *shape, generator=g) + mu * m, "ddim", 20, g)
                out[f"g{gam}+halfmu"] = round(structured_dup(imgs), 3)
    out["s"] = round(time.time() - t0, 1)
    print(json.dumps(out), flush=True)
