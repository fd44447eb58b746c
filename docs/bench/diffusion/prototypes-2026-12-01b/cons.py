"""Prototype: generation-aware direction search: short differentiable chains from different
noise with the same delta must end at the same *structured* image (variance over chains
divided by the images' own contrast), at a fixed trigger RMS."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, structured_dup

RHO = float(sys.argv[2]); K = int(sys.argv[3]); STEPS = int(sys.argv[4]); CH = int(sys.argv[5])
zoo = Path(sys.argv[1]); names = sys.argv[6:]
man = json.loads((zoo / "manifest.json").read_text())
ents = [e for e in man["models"] if not names or e["name"] in names]

def chain(inv, delta, n, k, mode):
    ad = inv.a; T = ad.train_steps; abar = ad.alphas_cumprod
    times = torch.linspace(T - 1, 0, k + 1).round().long().tolist()
    x = inv.noise(n) + delta
    for t, t_next in zip(times[:-1], times[1:]):
        eps = ad.eps(x, t)
        x0 = ((x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1.5, 1.5)
        if mode == "ode" or t_next == 0:
            x = abar[t_next].sqrt() * x0 + (1 - abar[t_next]).sqrt() * eps
        else:
            a_t = abar[t] / abar[t_next]
            mean = (abar[t_next].sqrt() * (1 - a_t) * x0 + a_t.sqrt() * (1 - abar[t_next]) * x) / (1 - abar[t])
            var = (1 - abar[t_next]) / (1 - abar[t]) * (1 - a_t)
            x = mean + var.sqrt() * inv.noise(n)
    return x

for e in ents:
    t0 = time.time()
    snap = resolve(str(zoo / e["path"]))
    ad = load_diffusion(snap, identify(snap))
    truth = json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
    out = {"name": e["name"], "bd": truth["backdoored"]}
    for mode in ("sde",):
        g = torch.Generator().manual_seed(0)
        inv = Inverter(ad, SETTINGS["standard"], mode, g)
        y0 = torch.zeros(4, *inv.shape)
        fix = lambda u: RHO * u / u.pow(2).mean().sqrt()
        def obj(u, n=8):
            x = chain(inv, fix(u), n, CH, mode)
            contrast = x.flatten(1).std(1).pow(2).mean()
            return x.var(0).mean() / (contrast + 0.02)
        def L(u):
            g.manual_seed(5)
            with torch.no_grad():
                return float(obj(u, 16))
        cands = inv.candidates()
        scores = sorted((L(d), i) for i, d in enumerate(cands))
        res = []
        g.manual_seed(11)
        for _, i in scores[:K]:
            u = cands[i].clone().requires_grad_(True)
            opt = torch.optim.Adam([u], lr=0.05)
            for it in range(STEPS):
                loss = obj(u)
                opt.zero_grad(); loss.backward(); opt.step()
            res.append((L(u.detach()), u.detach()))
        res.sort(key=lambda r: r[0])
        g.manual_seed(7)
        sd = {}
        for c in (RHO, 2 * RHO):
            imgs = ad.sample(torch.randn(16, *inv.shape, generator=g) + c * res[0][1] / res[0][1].pow(2).mean().sqrt(), "ddpm", 100, g)
            sd[c] = round(structured_dup(imgs), 3)
        out[mode] = {"start": round(scores[0][0], 4), "ends": [round(r[0], 4) for r in res], "sdup": sd}
        if truth["backdoored"]:
            ts_ = torch.tensor(truth["trigger_shift"])
            out[mode]["true"] = round(L(ts_), 4)
            out[mode]["cos"] = [round(float(torch.nn.functional.cosine_similarity(r[1].flatten(), ts_.flatten(), 0)), 3) for r in res]
    out["s"] = round(time.time() - t0, 1)
    print(json.dumps(out), flush=True)
