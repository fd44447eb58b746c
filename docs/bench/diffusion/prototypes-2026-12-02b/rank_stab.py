import sys, torch
from pathlib import Path
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, generation_scan
zoo, name = sys.argv[1].split(":")
snap = resolve(str(Path(zoo) / "models" / name)); ad = load_diffusion(snap, identify(snap))
for seed in range(4):
    inv = Inverter(ad, SETTINGS["standard"], "ode", torch.Generator().manual_seed(seed))
    cands = inv.candidates(); looks = []
    generation_scan(inv, cands, "ddim", looks)
    order = sorted(range(len(cands)), key=lambda i: (-looks[i][0], looks[i][1], i))
    print(name[5:20], seed, "top6", order[:6], "rank of 32:", order.index(32), [tuple(round(v, 3) for v in looks[i]) for i in order[:4]], flush=True)
