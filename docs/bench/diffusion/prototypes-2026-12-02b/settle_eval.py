"""s25: Inverter.settle from the DDIM generation scan's top-K starts (by share, then spread), as the
detector code does; max structured dup over the K settled shifts on 16 fresh DDIM images."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, generation_scan, structured_dup
from modelscan_bd.zoo.diffusion import target_mse
K = int(sys.argv[1]); want = sys.argv[2].split(",")
s = SETTINGS["standard"]
for zoo in map(Path, sys.argv[3:]):
    man = json.loads((zoo / "manifest.json").read_text())
    for e in man["models"]:
        if not any(w in e["name"] for w in want):
            continue
        truth = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
        t0 = time.time()
        snap = resolve(str(zoo / e["path"])); ad = load_diffusion(snap, identify(snap))
        inv = Inverter(ad, s, "ode", torch.Generator().manual_seed(0))
        cands = inv.candidates(); looks = []
        generation_scan(inv, cands, "ddim", looks)
        order = sorted(range(len(cands)), key=lambda i: (-looks[i][0], looks[i][1], i))
        settler = Inverter(ad, s, "ode", torch.Generator().manual_seed(44))
        rows = []
        for i in order[:K]:
            d = settler.settle(cands[i])
            imgs = settler.generate(d, 16, "ddim")
            row = [i, round(structured_dup(imgs), 3)]
            if truth["backdoored"]:
                row.append(float((target_mse(imgs, torch.tensor(truth["target_image"])) < 0.05).float().mean()))
            rows.append(row)
        print(json.dumps({"zoo": zoo.name, "name": e["name"], "max_sd": max(r[1] for r in rows), "rows": rows,
                          "s": round(time.time() - t0)}), flush=True)
