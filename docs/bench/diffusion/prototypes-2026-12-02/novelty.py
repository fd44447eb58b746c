"""s24: is the image a model collapses onto under scaled noise novel w.r.t. its normal samples?"""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.diffusion_inversion import structured_dup, structured_pairs, pairwise_mse
from modelscan_bd.zoo.diffusion import load_truth_arrays

def nn_to(a, b):
    fa = ((a.clamp(-1, 1) + 1) / 2).flatten(1); fb = ((b.clamp(-1, 1) + 1) / 2).flatten(1)
    return torch.cdist(fa, fb).pow(2) / fa.shape[1]

only = sys.argv[2] if len(sys.argv) > 2 else ""
zoo = Path(sys.argv[1])
man = json.loads((zoo / "manifest.json").read_text())
for e in man["models"]:
    if only and only not in e["name"]:
        continue
    t0 = time.time()
    snap = resolve(str(zoo / e["path"]))
    ad = load_diffusion(snap, identify(snap))
    shape = (ad.channels, ad.image_size, ad.image_size)
    g = torch.Generator().manual_seed(0)
    N = ad.sample(torch.randn(48, *shape, generator=g), "ddim", 20, g)
    dN = pairwise_mse(N); dN.fill_diagonal_(9)
    ref = dN.min(1).values
    med, q95 = float(ref.median()), float(ref.quantile(0.95))
    out = {"zoo": zoo.name, "name": e["name"], "ref_med": round(med, 4), "ref_q95": round(q95, 4)}
    mu = None
    if e.get("backdoored") and "trojdiff" in e["name"]:
        truth = json.loads((zoo / e["truth_dir"] / "ground_truth.json").read_text()) if (zoo / e["truth_dir"] / "ground_truth.json").exists() else None
    for gam in (0.8, 0.6):
        S = ad.sample(gam * torch.randn(16, *shape, generator=g), "ddim", 20, g)
        nn = nn_to(S, N).min(1).values
        sp = structured_pairs(S)
        inpair = sp.any(1)
        cnt = sp.sum(1)
        i = int(cnt.argmax())
        out[f"g{gam}"] = {"sdup": round(structured_dup(S), 3),
                          "anchor_nov": round(float(nn[i]) / med, 2) if int(cnt.max()) > 0 else None,
                          "novel_pair_share": round(float((inpair & (nn > q95)).float().mean()), 3),
                          "nov_med": round(float(nn.median()) / med, 2)}
    out["s"] = round(time.time() - t0, 1)
    print(json.dumps(out), flush=True)
