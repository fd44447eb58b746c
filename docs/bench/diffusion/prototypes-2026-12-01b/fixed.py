"""Prototype: descent on the direction at a fixed trigger RMS (high-t SDE shift loss)."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS

RHO = float(sys.argv[2]); K = int(sys.argv[3]); STEPS = int(sys.argv[4])
zoo = Path(sys.argv[1]); names = sys.argv[5:]
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
    def fix(u): return RHO * u / u.pow(2).mean().sqrt()
    def L(d, n=32):
        g.manual_seed(5)
        with torch.no_grad():
            return float(inv.relative_loss(d, y0, n=n, ts=inv.ts[:2]))
    cands = inv.candidates()
    scores = sorted((L(fix(d), 8), i) for i, d in enumerate(cands))
    res = []
    g.manual_seed(11)
    for _, i in scores[:K]:
        u = cands[i].clone().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=0.05)
        for it in range(STEPS):
            loss = inv.relative_loss(fix(u), y0, n=8, ts=inv.ts[:2])
            opt.zero_grad(); loss.backward(); opt.step()
        res.append((L(fix(u.detach())), u.detach()))
    res.sort(key=lambda r: r[0])
    best = res[0][1]
    out = {"name": e["name"], "bd": truth["backdoored"], "start": round(scores[0][0], 4),
           "ends": [round(r[0], 4) for r in res]}
    if truth["backdoored"]:
        ts_ = torch.tensor(truth["trigger_shift"])
        out["true"] = round(L(fix(ts_)), 4)
        out["cos"] = [round(float(torch.nn.functional.cosine_similarity(r[1].flatten(), ts_.flatten(), 0)), 3) for r in res]
    out["s"] = round(time.time() - t0, 1)
    print(json.dumps(out), flush=True)
