"""s25: does a denser grid of 6x6 bright/dark patches (step 2 / step 1) find the blind misses? Top-3 by the
8-image quick look, then confirmed on 16 fresh images (as the detector does)."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, structured_dup
s = SETTINGS["standard"]
step = int(sys.argv[1])
for arg in sys.argv[2:]:
    zoo, name = arg.split(":")
    zoo = Path(zoo)
    truth = json.loads((zoo / "truth" / name / "groundtruth.json").read_text())
    snap = resolve(str(zoo / "models" / name)); ad = load_diffusion(snap, identify(snap))
    r = torch.tensor(truth["trigger_shift"]) if truth["backdoored"] else None
    g = torch.Generator().manual_seed(0)
    inv = Inverter(ad, s, "ode", g)
    cands = []
    for size in (5, 6):
        for rr in range(0, 16 - size + 1, step):
            for cc in range(0, 16 - size + 1, step):
                for amp in (1.5, -1.5):
                    d = torch.zeros(inv.shape); d[:, rr:rr + size, cc:cc + size] = amp; cands.append(d)
    out = {}
    t0 = time.time()
    for smp in ("ddpm", "ddim"):
        sc = sorted(((structured_dup(inv.generate(d, 8, smp, steps=20)), -i) for i, d in enumerate(cands)), reverse=True)[:3]
        conf = []
        for v, mi in sc:
            d = cands[-mi]
            fresh = structured_dup(inv.generate(d, 16, smp))
            cos = round(float((d * r).sum() / (d.norm() * r.norm())), 2) if r is not None else None
            conf.append((round(v, 3), round(fresh, 3), cos))
        out[smp] = conf
    print(zoo.name, name, len(cands), "cands", round(time.time() - t0), "s", json.dumps(out), flush=True)
