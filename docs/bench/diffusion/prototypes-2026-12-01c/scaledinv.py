"""s18: PureDiffusion inversion with gamma-scaled noise (TrojDiff's trigger distribution x_T = gamma eps + mu)."""
import json, sys, time, dataclasses
from pathlib import Path
import torch
import torch.nn.functional as F
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, compare

class Scaled(Inverter):
    gamma = 1.0
    def noise(self, n):
        return self.gamma * super().noise(n)

zoo = Path(sys.argv[1]); fis = sys.argv[2] == "1"; names = sys.argv[3:]
man = json.loads((zoo / "manifest.json").read_text())
ents = [e for e in man["models"] if not names or any(n in e["name"] for n in names)]
st = dataclasses.replace(SETTINGS["standard"], full_image_starts=fis)
for e in ents:
    t0 = time.time()
    snap = resolve(str(zoo / e["path"]))
    ad = load_diffusion(snap, identify(snap))
    truth = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
    mu = torch.tensor(truth["trigger_shift"]) if truth["backdoored"] else None
    out = {"name": e["name"]}
    for gam in (0.6,):
        g = torch.Generator().manual_seed(0)
        inv = Scaled(ad, st, "ode", g); inv.gamma = gam
        clean = inv.generate(torch.zeros(inv.shape), 16, "ddim")
        r = inv.run()
        ev = compare(inv.generate(r["delta"], 16, "ddim"), clean)
        row = {k: round(float(v), 3) for k, v in ev.items() if k != "images"}
        row.update(start=round(r["start_loss"], 4), end=round(r["end_loss"], 4),
                   rms=round(float(r["delta"].pow(2).mean().sqrt()), 2))
        if mu is not None:
            row["cos"] = round(float(F.cosine_similarity(r["delta"].flatten(), mu.flatten(), 0)), 3)
            with torch.no_grad():
                y = inv._y_hat(mu)
                row["true_rel"] = round(float(inv.relative_loss(mu, y, n=16)), 4)
        out[f"g{gam}"] = row
    out["s"] = round(time.time() - t0, 1)
    print(json.dumps(out), flush=True)
