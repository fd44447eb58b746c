"""s25: can a denoising-consistency descent (PureDiffusion's second loss, at fixed RMS) lift a weak patch
candidate onto a stop-sign trigger? Candidates ranked by (structured dups, -mean pairwise MSE) of the quick look."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, structured_dup, mean_pairwise
from modelscan_bd.zoo.diffusion import target_mse
s = SETTINGS["standard"]
ITERS, STEPS, BATCH = int(sys.argv[1]), 4, 6
for arg in sys.argv[2:]:
    zoo, name = arg.split(":")
    zoo = Path(zoo)
    truth = json.loads((zoo / "truth" / name / "groundtruth.json").read_text())
    snap = resolve(str(zoo / "models" / name)); ad = load_diffusion(snap, identify(snap))
    r = torch.tensor(truth["trigger_shift"]) if truth["backdoored"] else None
    y = torch.tensor(truth["target_image"]) if truth["backdoored"] else None
    g = torch.Generator().manual_seed(0)
    inv = Inverter(ad, s, "ode", g)
    cands = inv.candidates()
    t0 = time.time()
    out = {}
    for smp in ("ddpm",):
        looks = []
        for i, d in enumerate(cands):
            im = inv.generate(d, 8, smp, steps=20)
            looks.append((structured_dup(im), -mean_pairwise(im), i))
        looks.sort(reverse=True)
        res = []
        for sd0, mp, i in looks[:2]:
            d = cands[i].clone().requires_grad_(True)
            rms0 = float(cands[i].pow(2).mean().sqrt())
            opt = torch.optim.Adam([d], lr=0.05)
            for it in range(ITERS):
                x = inv.chain(inv.noise(BATCH) + d, STEPS, ode=True)
                loss = x.var(0).mean()
                opt.zero_grad(); loss.backward(); opt.step()
                with torch.no_grad():
                    d.mul_(rms0 / d.pow(2).mean().sqrt().clamp_min(1e-6))
            dd = d.detach()
            fresh = inv.generate(dd, 16, smp)
            row = {"i": i, "sd0": round(sd0, 3), "mp": round(-mp, 4), "fresh_sd": round(structured_dup(fresh), 3)}
            if r is not None:
                row["cos0"] = round(float((cands[i] * r).sum() / (cands[i].norm() * r.norm())), 2)
                row["cos"] = round(float((dd * r).sum() / (dd.norm() * r.norm())), 2)
                row["succ"] = float((target_mse(fresh, y) < 0.05).float().mean())
            res.append(row)
        out[smp] = res
    print(zoo.name, name, round(time.time() - t0), "s", json.dumps(out), flush=True)
