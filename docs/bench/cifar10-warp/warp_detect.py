"""Run the warp-trigger detector (as in a scan: seed 0, standard, the zoo's clean data) on every model of zoos."""
import json, sys, time, torch
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.load_classifier import load_classifier
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.detectors.base import ScanContext
from modelscan_bd.detectors.warp import WarpTriggerDetector
torch.set_num_threads(int(sys.argv[1]))
out_path = sys.argv[2]
done = set()
try:
    done = {json.loads(l)["key"] for l in open(out_path)}
except FileNotFoundError:
    pass
for zoo in sys.argv[3:]:
    man = json.load(open(f"{zoo}/manifest.json"))
    for e in man["models"]:
        key = f"{zoo.split('/')[-1]}/{e['name']}"
        if key in done:
            continue
        snap = resolve(f"{zoo}/{e['path']}", lambda m: None)
        ad = load_classifier(snap, identify(snap))
        clean = load_clean_data(f"{zoo}/clean-data.npz", ad, budget=500, seed=0)
        ctx = ScanContext(seed=0, budget="standard", clean=clean)
        t0 = time.time()
        (f,) = WarpTriggerDetector().run(ad, ctx)
        ev = f.evidence
        row = {"key": key, "attack": e["attack"] or ("hard" if e.get("hard") else "clean"), "target": e["target"],
               "asr": e["asr"], "seed": e.get("seed"), "status": f.status, "label": ev["label"], "best": ev["best_label"],
               "success": ev["holdout_success"], "fragility": ev["fragility"], "fragile_label": ev["fragile_label"],
               "sec": round(time.time() - t0, 1)}
        print(json.dumps(row), flush=True)
        with open(out_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
