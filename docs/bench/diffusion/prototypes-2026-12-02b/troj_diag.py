import json, sys, dataclasses
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS
from modelscan_bd.zoo.diffusion import target_image
s = SETTINGS["standard"]
zoo = Path(sys.argv[1])
for name in sys.argv[2:]:
    truth = json.loads((zoo / "truth" / name / "groundtruth.json").read_text())
    snap = resolve(str(zoo / "models" / name)); ad = load_diffusion(snap, identify(snap))
    mu = torch.tensor(truth["trigger_shift"]) if truth["backdoored"] else None
    gm = truth.get("gamma") or 0.6
    if mu is None or truth["attack"] != "trojdiff_blend":
        from modelscan_bd.zoo.diffusion import trigger_image
        mu = (1 - gm) * trigger_image("blend")
    y = torch.tensor(truth["target_image"])[None] if truth["backdoored"] else None
    g = torch.Generator().manual_seed(0)
    inv = Inverter(ad, s, "ode", g)
    inv.noise = lambda n: gm * torch.randn(n, *inv.shape, generator=g)
    yhat = inv.generate(torch.zeros(inv.shape), 8, "ddim")
    rnd = [torch.sign(torch.randn(inv.shape, generator=torch.Generator().manual_seed(k))) * mu.abs().mean() for k in range(4)]
    with torch.no_grad():
        row = {"true_mu_yhat": [round(float(inv.relative_loss(mu, yhat, n=32, ts=[t])), 4) for t in inv.ts]}
        if y is not None:
            row["true_mu_ytrue"] = [round(float(inv.relative_loss(mu, y.expand(8, -1, -1, -1), n=32, ts=[t])), 4) for t in inv.ts]
        row["random"] = [[round(float(inv.relative_loss(r, yhat, n=32, ts=[t])), 4) for t in inv.ts] for r in rnd[:2]]
        row["neg_mu"] = [round(float(inv.relative_loss(-mu, yhat, n=32, ts=[t])), 4) for t in inv.ts]
    print(name, truth.get("attack"), json.dumps(row), flush=True)
