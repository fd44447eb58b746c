"""Does a short all-label patch inversion (Neural Cleanse's objective, fewer steps) rank the
label-consistent target first? Measurement for a candidate pre-screen; nothing ships from it."""
import json, time
from pathlib import Path
import torch
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.adapters.load_classifier import load_classifier
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.inversion import PATCH, InversionSettings, Slot, invert
torch.set_num_threads(2)
zoos = {"v4": ("docs/bench/cifar10-v4/results-standard.json", "/work/zoo/cifar10-v4"),
        "v5": ("docs/bench/cifar10-v5/results-standard.json", "/work/zoo/cifar10-v5"),
        "v6": ("docs/bench/cifar10-v6/results-standard.json", "/work/zoo/cifar10-v6"),
        "s1400": ("docs/bench/cifar10-v4/blind-s1400-standard.json", "/work/zoo/cifar10-blind-s1400"),
        "s1700": ("docs/bench/target-rule/results-s1700.json", "/work/zoo/cifar10-target-s1700")}
out = {}
for zname, (path, zoo) in zoos.items():
    manifest = {m["name"]: m for m in json.load(open(Path(zoo) / "manifest.json"))["models"]}
    for r in json.load(open(path))["records"]:
        if r["attack"] != "label_consistent":
            continue
        t0 = time.time()
        snap = resolve(str(Path(zoo) / manifest[r["name"]]["path"]))
        adapter = load_classifier(snap, identify(snap))
        clean = load_clean_data(Path(zoo) / "clean-data.npz", adapter, budget=500, seed=0)
        row = {"target": r["target"], "candidate": r["candidate"], "nc": r["neural_cleanse"]["target"]}
        for steps in (100,):
            inv = invert(adapter.model, clean.exposure_images, clean.exposure_labels,
                         [Slot(k, PATCH) for k in range(adapter.num_classes)],
                         InversionSettings(steps=steps, images_per_slot=16), torch.Generator().manual_seed(0))
            sizes = [t.effective_size() for t in inv]
            order = sorted(range(len(sizes)), key=lambda k: sizes[k])
            row[f"rank{steps}"] = order.index(r["target"])
            row[f"top{steps}"] = order[:2]
        row["seconds"] = round(time.time() - t0, 1)
        out[f"{zname}/{r['name']}"] = row
        print(zname, r["name"], row, flush=True)
json.dump(out, open("docs/bench/target-rule/prescreen-label-consistent.json", "w"), indent=1)
ranks = [v["rank100"] for v in out.values()]
print("top1", sum(x == 0 for x in ranks), "top2", sum(x <= 1 for x in ranks), "of", len(ranks))
