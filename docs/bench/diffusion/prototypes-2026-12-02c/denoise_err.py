"""s26: relative noise-prediction error ||eps_hat - eps||^2 / ||eps||^2 at t = 0.6 T, gamma 1,
around the model's own DDIM samples (16 centres x 8 draws): is the model a working denoiser?
Zoo models (trained) against untrained / barely trained tiny UNets."""
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import schedule, NOISE_SCALE_T
from modelscan_bd.zoo.diffusion import save_diffusers_repo, synthetic_digits, tiny_unet, train_unet

def err(ad, g, n=16, draws=8):
    cent = ad.sample(torch.randn(n, ad.channels, ad.image_size, ad.image_size, generator=g), "ddim", 20, g)
    sched = schedule(ad.alphas_cumprod); t = int(NOISE_SCALE_T * ad.train_steps)
    s, sig = float(sched["s"][t]), float(sched["sigma"][t])
    num = den = 0.0
    with torch.no_grad():
        for c in cent:
            e = torch.randn(draws, *c.shape, generator=g)
            num += float((ad.eps(s * c + sig * e, t) - e).pow(2).sum()); den += float(e.pow(2).sum())
    return num / den

def model(path):
    snap = resolve(str(path)); return load_diffusion(snap, identify(snap))

out = Path("/work/runs/s26/untrained")
for size in (16, 32):
    for steps in (0, 20, 200):
        data, _ = synthetic_digits(256, seed=0, image_size=size)
        u = tiny_unet(image_size=size)
        if steps:
            u = train_unet(u, data, steps=steps, lr=1e-3, seed=0)
        repo = save_diffusers_repo(u, out / f"u{size}-{steps}")
        print(json.dumps({"model": f"untrained-ish {size}px {steps} steps", "err": round(err(model(repo), torch.Generator().manual_seed(0)), 4)}), flush=True)
for zoo in map(Path, sys.argv[1:]):
    man = json.loads((zoo / "manifest.json").read_text())
    for e in man["models"]:
        print(json.dumps({"zoo": zoo.name, "model": e["name"], "err": round(err(model(zoo / e["path"]), torch.Generator().manual_seed(0)), 4)}), flush=True)
