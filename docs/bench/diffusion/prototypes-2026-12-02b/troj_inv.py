"""s25: shift inversion on gamma-scaled noise (Inverter.noise scaled by gamma), full-image starts on;
then generation from gamma*eps + delta*: structured dups, target SSIM, success, trigger cosine."""
import json, sys, time, dataclasses
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, structured_dup, anchor, medoid
from modelscan_bd.bench_diffusion import target_quality, fidelity
from modelscan_bd.zoo.diffusion import target_mse

s = dataclasses.replace(SETTINGS["standard"], full_image_starts=True)
GAM = [float(x) for x in sys.argv[1].split(",")]
only = sys.argv[2]
for zoo in map(Path, sys.argv[3:]):
    man = json.loads((zoo / "manifest.json").read_text())
    for e in man["models"]:
        truth = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
        att = truth.get("attack") or "clean"
        if att not in only.split(","):
            continue
        snap = resolve(str(zoo / e["path"])); ad = load_diffusion(snap, identify(snap))
        for gm in GAM:
            t0 = time.time()
            g = torch.Generator().manual_seed(0)
            inv = Inverter(ad, s, "ode", g)
            inv.noise = (lambda n, inv=inv, gm=gm: gm * torch.randn(n, *inv.shape, generator=inv.g))
            res = inv.run()
            d = res["delta"]
            base = inv.generate(torch.zeros(inv.shape), 16, "ddim")
            imgs = inv.generate(d, 16, "ddim")
            med, share = medoid(imgs)
            out = {"zoo": zoo.name[-7:], "name": e["name"][5:], "gamma": gm, "g_true": truth.get("gamma"),
                   "start": round(res["start_loss"], 3), "end": round(res["end_loss"], 3),
                   "sd": round(structured_dup(imgs), 3), "sd0": round(structured_dup(base), 3), "share": round(share, 3)}
            if truth["backdoored"]:
                out["ssim"] = round(target_quality(med, torch.tensor(truth["target_image"]))["ssim"], 3)
                out["cos"] = round(fidelity(d, torch.tensor(truth["trigger_shift"]))["cosine"], 3)
                out["succ"] = float((target_mse(imgs, torch.tensor(truth["target_image"])) < 0.05).float().mean())
            out["s"] = round(time.time() - t0, 1)
            print(json.dumps(out), flush=True)
