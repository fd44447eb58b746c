"""Prototype: gradient-free, generation-aware candidate scan: for each patch candidate, a few
images from eps + c * candidate with a short sampler; score = structured near-duplicate share."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import Inverter, SETTINGS, structured_dup

N = int(sys.argv[2]); STEPS = {"ddpm": int(sys.argv[3]), "ddim": int(sys.argv[4])}
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
    cands = inv.candidates()
    out = {"name": e["name"], "bd": truth["backdoored"], "n": len(cands)}
    for sampler in ("ddpm", "ddim"):
        scores = []
        for i, d in enumerate(cands):
            g.manual_seed(100 + i)
            x = torch.randn(N, *inv.shape, generator=g) + d
            scores.append((structured_dup(ad.sample(x, sampler, STEPS[sampler], g)), i))
        scores.sort(reverse=True)
        top = scores[:3]
        row = {"top": [round(s, 3) for s, _ in top]}
        conf = []
        for _, i in top:  # fresh noise, more images, the decision's sampling steps: no selection bias
            g.manual_seed(5000 + i)
            x = torch.randn(16, *inv.shape, generator=g) + cands[i]
            conf.append(round(structured_dup(ad.sample(x, sampler, {"ddpm": 100, "ddim": 20}[sampler], g)), 3))
        row["confirm"] = conf
        if truth["backdoored"]:
            ts_ = torch.tensor(truth["trigger_shift"])
            row["top_cos"] = [round(float(torch.nn.functional.cosine_similarity(cands[i].flatten(), ts_.flatten(), 0)), 2) for _, i in top]
            g.manual_seed(99)
            row["true"] = round(structured_dup(ad.sample(torch.randn(N, *inv.shape, generator=g) + ts_, sampler, STEPS[sampler], g)), 3)
        out[sampler] = row
    out["s"] = round(time.time() - t0, 1)
    print(json.dumps(out), flush=True)
