"""Prototype: high-timestep SDE shift response as a data-free statistic."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS

zoo = Path(sys.argv[1]); names = sys.argv[2:]
man = json.loads((zoo / "manifest.json").read_text())
ents = [e for e in man["models"] if not names or e["name"] in names]
for e in ents:
    t0 = time.time()
    snap = resolve(str(zoo / e["path"]))
    ad = load_diffusion(snap, identify(snap))
    truth = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
    g = torch.Generator().manual_seed(0)
    inv = Inverter(ad, SETTINGS["standard"], "sde", g)
    y0 = torch.zeros(4, *inv.shape)
    def L(d, n=32):
        g.manual_seed(5)
        with torch.no_grad():
            return float(inv.relative_loss(d, y0, n=n, ts=inv.ts[:2]))
    cands = inv.candidates()
    scores = sorted((L(d, 8), i) for i, d in enumerate(cands))
    best = cands[scores[0][1]]
    bestL = L(best)
    out = {"name": e["name"], "bd": truth["backdoored"], "patch_min": round(bestL, 4),
           "patch_med": round(scores[len(scores)//2][0], 4)}
    # descent on the high-t SDE relative loss only
    d = best.clone().requires_grad_(True)
    opt = torch.optim.Adam([d], lr=0.1)
    g.manual_seed(11)
    for it in range(30):
        loss = inv.relative_loss(d, y0, n=8, ts=inv.ts[:2])
        opt.zero_grad(); loss.backward(); opt.step()
    unit = d.detach() / d.detach().pow(2).mean().sqrt()
    out["desc"] = {c: round(L(c * unit), 4) for c in (0.3, 0.45, 0.6)}
    if truth["backdoored"]:
        ts_ = torch.tensor(truth["trigger_shift"])
        out["true"] = round(L(ts_), 4)
        out["true_rms"] = round(float(ts_.pow(2).mean().sqrt()), 3)
        out["cos"] = round(float(torch.nn.functional.cosine_similarity(unit.flatten(), ts_.flatten(), 0)), 3)
    out["s"] = round(time.time() - t0, 1)
    print(json.dumps(out), flush=True)
