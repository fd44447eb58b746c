"""s24: x0-prediction variance over gamma-scaled noise around the model's own samples, t x gamma sweep."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.zoo.diffusion import schedule

@torch.no_grad()
def x0var(ad, sch, c, t, gamma, n, g):
    s, sig = float(sch["s"][t]), float(sch["sigma"][t])
    x = c + sig * gamma * torch.randn(n, *c.shape, generator=g)
    x0 = (x - sig * ad.eps(x, t)) / s
    return float(x0.var(0).mean())

for zoo in map(Path, sys.argv[1:]):
    man = json.loads((zoo / "manifest.json").read_text())
    for e in man["models"]:
        t0 = time.time()
        snap = resolve(str(zoo / e["path"]))
        ad = load_diffusion(snap, identify(snap))
        sch = schedule(ad.alphas_cumprod)
        g = torch.Generator().manual_seed(0)
        shape = (ad.channels, ad.image_size, ad.image_size)
        nat = ad.sample(torch.randn(8, *shape, generator=g), "ddim", 20, g)
        out = {"zoo": zoo.name, "name": e["name"], "attack": e.get("attack")}
        for t in (600, 700, 800, 900):
            s = float(sch["s"][t])
            out[t] = {gm: round(sum(x0var(ad, sch, s * x, t, gm, 16, g) for x in nat) / len(nat), 4)
                      for gm in (0.4, 0.6, 0.8, 1.0)}
        out["s"] = round(time.time() - t0, 1)
        print(json.dumps(out), flush=True)
