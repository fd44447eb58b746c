import json, sys, dataclasses
from pathlib import Path
import torch, numpy as np
torch.set_num_threads(1)
from PIL import Image
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS

class Scaled(Inverter):
    gamma = 0.6
    def noise(self, n):
        return self.gamma * super().noise(n)
zoo = Path(sys.argv[1]); rows_all = []
for name in sys.argv[2:]:
    e = next(e for e in json.loads((zoo / "manifest.json").read_text())["models"] if name in e["name"])
    snap = resolve(str(zoo / e["path"])); ad = load_diffusion(snap, identify(snap))
    truth = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
    g = torch.Generator().manual_seed(0)
    inv = Scaled(ad, dataclasses.replace(SETTINGS["standard"], cons_batch=8, cons_steps=5), "ode", g)
    rows = [inv.generate(torch.zeros(inv.shape), 12, "ddim"), inv.generate(torch.zeros(inv.shape), 12, "ddim", gamma=1/0.6)]
    if truth["backdoored"]:
        mu = torch.tensor(truth["trigger_shift"]); rows.append(inv.generate(mu, 12, "ddim"))
    delta = (0.05 * torch.randn(inv.shape, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=0.05)
    for it in range(60):
        loss = inv.consistency_loss(delta); opt.zero_grad(); loss.backward(); opt.step()
    rows.append(inv.generate(delta.detach(), 12, "ddim"))
    for r in rows:
        rows_all.append(torch.cat([x for x in r.clamp(-1, 1)], dim=2))
    rows_all.append(torch.full_like(rows_all[-1], -1)[:, :2])
img = torch.cat(rows_all, dim=1)[0]
Image.fromarray(((img + 1) * 127.5).numpy().astype(np.uint8)).resize((img.shape[1] * 4, img.shape[0] * 4), Image.NEAREST).save(sys.argv[0].replace('.py', '.png'))
