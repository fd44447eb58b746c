"""s18: consistency-only descent at gamma-scaled noise: find delta that makes DDIM chains from gamma*eps + delta collapse."""
import json, sys, time, dataclasses
from pathlib import Path
import torch
import torch.nn.functional as F
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, compare, medoid

class Scaled(Inverter):
    gamma = 1.0
    def noise(self, n):
        return self.gamma * super().noise(n)

zoo = Path(sys.argv[1]); K = int(sys.argv[2]); iters = int(sys.argv[3]); gam = float(sys.argv[4]); names = sys.argv[5:]
man = json.loads((zoo / "manifest.json").read_text())
ents = [e for e in man["models"] if not names or any(n in e["name"] for n in names)]
for e in ents:
    t0 = time.time()
    snap = resolve(str(zoo / e["path"]))
    ad = load_diffusion(snap, identify(snap))
    truth = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
    mu = torch.tensor(truth["trigger_shift"]) if truth["backdoored"] else None
    g = torch.Generator().manual_seed(0)
    st = dataclasses.replace(SETTINGS["standard"], cons_batch=8, cons_steps=K)
    inv = Scaled(ad, st, "ode", g); inv.gamma = gam
    clean = inv.generate(torch.zeros(inv.shape), 16, "ddim")
    delta = (0.05 * torch.randn(inv.shape, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=0.05)
    hist = []
    for it in range(iters):
        # relative to the mean-square distance of chain ends: the chains should agree (variance) ...
        loss = inv.consistency_loss(delta)
        opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad(): delta.clamp_(-1.5, 1.5)
        if it % 10 == 0: hist.append(round(float(loss), 4))
    d = delta.detach()
    imgs = inv.generate(d, 16, "ddim")
    ev = compare(imgs, clean)
    row = {k: round(float(v), 3) for k, v in ev.items() if k != "images"}
    med, share = medoid(imgs)
    row.update(rms=round(float(d.pow(2).mean().sqrt()), 3), hist=hist, share=round(share, 2))
    if mu is not None:
        row["cos"] = round(float(F.cosine_similarity(d.flatten(), mu.flatten(), 0)), 3)
        y = torch.tensor(truth["target_image"])
        row["med_target_mse"] = round(float(((med.clamp(-1, 1) - y) / 2).pow(2).mean()), 4)
    cmed, _ = medoid(clean)
    row["med_vs_cleanmed"] = round(float(((med.clamp(-1, 1) - cmed.clamp(-1, 1)) / 2).pow(2).mean()), 4)
    print(json.dumps({"name": e["name"], **row, "s": round(time.time() - t0, 1)}), flush=True)
