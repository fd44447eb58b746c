"""s18: run the diffusion detector (as shipped in the working tree) on chosen zoo models."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.diffusion import load_diffusion
from modelscan_bd.detectors.base import ScanContext
from modelscan_bd.detectors.diffusion_inversion import DiffusionInversionDetector

zoo = Path(sys.argv[1]); names = sys.argv[2:]
man = json.loads((zoo / "manifest.json").read_text())
ents = [e for e in man["models"] if not names or any(n in e["name"] for n in names)]
for e in ents:
    t0 = time.time()
    snap = resolve(str(zoo / e["path"])); ad = load_diffusion(snap, identify(snap))
    res = {}
    DiffusionInversionDetector().run(ad, ScanContext(seed=0, budget=sys.argv[0].endswith("fast.py") and "fast" or "standard", results=res))
    r = res["diffusion-inversion"]
    print(json.dumps({"name": e["name"], "sd": round(r["structured_dup"], 3), "source": r["source"], "sampler": r["sampler"],
                      "refined": r["refined"], "s": round(time.time() - t0, 1)}), flush=True)
