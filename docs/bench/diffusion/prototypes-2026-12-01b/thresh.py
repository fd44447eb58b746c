"""Prototype: structured near-duplicate share at several duplicate thresholds, per model
(same scan as the shipped detector; images captured from evaluate())."""
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.detectors import diffusion_inversion as di
from modelscan_bd.scan import ScanConfig, scan

THR = (0.01, 0.02, 0.03, 0.05)
cap = []
orig = di.evaluate
def wrapped(adapter, delta, inv, clean_sets):
    per = orig(adapter, delta, inv, clean_sets)
    cap.append({s: (per[s]["images"], clean_sets[s]) for s in per})
    return per
di.evaluate = wrapped

def sdup(images, thr):
    d = di.pairwise_mse(images); n = len(images); iu = torch.triu_indices(n, n, 1)
    solid = ((images.clamp(-1, 1) + 1) / 2).flatten(1).std(1) >= di.FLAT_STD
    return float(((d[iu[0], iu[1]] < thr) & solid[iu[0]] & solid[iu[1]]).float().mean())

zoo = Path(sys.argv[1]); part = int(sys.argv[2]); parts = int(sys.argv[3])
man = json.loads((zoo / "manifest.json").read_text())
for i, e in enumerate(man["models"]):
    if i % parts != part:
        continue
    cap.clear()
    out = scan(str(zoo / e["path"]), ScanConfig(budget="standard", seed=0))
    res = out.context.results["diffusion-inversion"]
    row = {"name": e["name"], "bd": e["backdoored"], "sd_shipped": res["structured_dup"]}
    for thr in THR:
        best = max(sdup(imgs, thr) - sdup(clean, thr) for c in cap for imgs, clean in c.values())
        row[str(thr)] = round(best, 4)
    print(json.dumps(row), flush=True)
