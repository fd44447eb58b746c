"""s24: variance of the model's x0 prediction over a noise ball around a centre, at mid t."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.zoo.diffusion import schedule

zoo = Path(sys.argv[1])
man = json.loads((zoo / "manifest.json").read_text())
truths = {}
for e in man["models"]:
    if "trojdiff" in e["name"]:
        d = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
        truths[d["target_name"]] = (torch.tensor(d["trigger_shift"]), torch.tensor(d["target_image"]))

@torch.no_grad()
def x0var(ad, sch, c, t, gamma, n, g):
    s, sig = float(sch["s"][t]), float(sch["sigma"][t])
    x = c + sig * gamma * torch.randn(n, *c.shape, generator=g)
    x0 = (x - sig * ad.eps(x, t)) / s
    return float(x0.var(0).mean())

for e in man["models"]:
    t0 = time.time()
    snap = resolve(str(zoo / e["path"]))
    ad = load_diffusion(snap, identify(snap))
    sch = schedule(ad.alphas_cumprod)
    g = torch.Generator().manual_seed(0)
    shape = (ad.channels, ad.image_size, ad.image_size)
    nat = ad.sample(torch.randn(4, *shape, generator=g), "ddim", 20, g)
    out = {"zoo": zoo.name, "name": e["name"]}
    for t in (300, 500, 700):
        s, k = float(sch["s"][t]), float(sch["k"][t])
        row = {}
        row["nat1"] = sum(x0var(ad, sch, s * x, t, 1.0, 16, g) for x in nat) / 4
        row["nat.6"] = sum(x0var(ad, sch, s * x, t, 0.6, 16, g) for x in nat) / 4
        for name, (mu, y) in truths.items():
            row["true_" + name] = x0var(ad, sch, s * y + k * mu, t, 0.6, 16, g)
            row["nomu_" + name] = x0var(ad, sch, s * y, t, 0.6, 16, g)
        out[t] = {k2: round(v, 4) for k2, v in row.items()}
    out["s"] = round(time.time() - t0, 1)
    print(json.dumps(out), flush=True)
