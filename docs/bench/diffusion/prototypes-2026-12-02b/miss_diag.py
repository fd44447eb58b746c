"""s25: on the blind misses, what the true trigger generates (scaled), against the best patch candidate."""
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, structured_dup, MODES
from modelscan_bd.zoo.diffusion import target_mse
s = SETTINGS["standard"]
for arg in sys.argv[1:]:
    zoo, name = arg.split(":")
    zoo = Path(zoo)
    truth = json.loads((zoo / "truth" / name / "groundtruth.json").read_text())
    snap = resolve(str(zoo / "models" / name)); ad = load_diffusion(snap, identify(snap))
    r = torch.tensor(truth["trigger_shift"]); y = torch.tensor(truth["target_image"])
    smp = truth["sampler"]
    g = torch.Generator().manual_seed(0)
    inv = Inverter(ad, s, "ode" if smp == "ddim" else "sde", g)
    row = {}
    for c in (0.5, 0.75, 1.0, 1.25):
        imgs = inv.generate(c * r, 16, smp, steps=20)
        row[c] = (round(structured_dup(imgs), 3), float((target_mse(imgs, y) < 0.05).float().mean()))
    cands = inv.candidates()
    sc = sorted(((structured_dup(inv.generate(d, 8, smp, steps=20)), i) for i, d in enumerate(cands)), reverse=True)[:3]
    best = [(round(v, 3), round(float((cands[i] * r).sum() / (cands[i].norm() * r.norm())), 2)) for v, i in sc]
    cosmax = max(float((d * r).sum() / (d.norm() * r.norm())) for d in cands)
    print(zoo.name, name, smp, "rms", round(float(r.pow(2).mean().sqrt()), 2), "true:", row, "best cands (sd, cos):", best, "max cand cos", round(cosmax, 2), flush=True)
