"""Does a short all-label patch inversion (Neural Cleanse's objective, 100 steps, seed 0, the bench's
clean data) rank the backdoor target first? Measurement for a candidate pre-screen; nothing ships from it.

    .venv/bin/python docs/bench/target-rule/prescreen.py label-consistent   # every LC model of the five zoos
    .venv/bin/python docs/bench/target-rule/prescreen.py other  # the other backdoored models with no trigger
        # recovered (collapse_labels.json; s1700's SIG models) and v6's clean models

Zoos under /work/zoo; writes prescreen-label-consistent.json or prescreen-other.json here."""
import json
import sys
import time
from pathlib import Path

import torch

from modelscan_bd.adapters.load_classifier import load_classifier
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.families import identify
from modelscan_bd.inversion import PATCH, InversionSettings, Slot, invert
from modelscan_bd.sources import resolve

HERE = Path(__file__).parent
ZOOS = {"v4": ("docs/bench/cifar10-v4/results-standard.json", "/work/zoo/cifar10-v4"),
        "v5": ("docs/bench/cifar10-v5/results-standard.json", "/work/zoo/cifar10-v5"),
        "v6": ("docs/bench/cifar10-v6/results-standard.json", "/work/zoo/cifar10-v6"),
        "s1400": ("docs/bench/cifar10-v4/blind-s1400-standard.json", "/work/zoo/cifar10-blind-s1400"),
        "s1700": ("docs/bench/target-rule/results-s1700.json", "/work/zoo/cifar10-target-s1700")}
S1700_SIG = ["resnet-sig-000", "resnet-sig-003", "resnet-sig-006", "resnet-sig-012", "resnet-sig-015"]


def wanted(mode: str, zoo: str, record: dict, no_trigger: set[str]) -> bool:
    if mode == "label-consistent":
        return record["attack"] == "label_consistent"
    return record["attack"] != "label_consistent" and (
        f"{zoo}/{record['name']}" in no_trigger or (zoo == "s1700" and record["name"] in S1700_SIG)
        or (zoo == "v6" and not record["backdoored"]))


def main(mode: str) -> None:
    torch.set_num_threads(2)
    no_trigger = set(json.loads((HERE / "collapse_labels.json").read_text()))
    out = {}
    for zoo, (path, folder) in ZOOS.items():
        manifest = {m["name"]: m for m in json.load(open(Path(folder) / "manifest.json"))["models"]}
        for r in json.load(open(path))["records"]:
            if not wanted(mode, zoo, r, no_trigger):
                continue
            t0 = time.time()
            snap = resolve(str(Path(folder) / manifest[r["name"]]["path"]))
            adapter = load_classifier(snap, identify(snap))
            clean = load_clean_data(Path(folder) / "clean-data.npz", adapter, budget=500, seed=0)
            inv = invert(adapter.model, clean.exposure_images, clean.exposure_labels,
                         [Slot(k, PATCH) for k in range(adapter.num_classes)],
                         InversionSettings(steps=100, images_per_slot=16), torch.Generator().manual_seed(0))
            sizes = [t.effective_size() for t in inv]
            order = sorted(range(len(sizes)), key=lambda k: sizes[k])
            row = {"attack": r["attack"], "target": r["target"], "candidate": r["candidate"],
                   "nc": r["neural_cleanse"]["target"],
                   "rank100": None if r["target"] is None else order.index(r["target"]), "top100": order[:2],
                   "seconds": round(time.time() - t0, 1)}
            out[f"{zoo}/{r['name']}"] = row
            print(zoo, r["name"], row, flush=True)
    (HERE / f"prescreen-{mode}.json").write_text(json.dumps(out, indent=1))
    ranks = [v["rank100"] for v in out.values() if v["target"] is not None]
    print("target first", sum(x == 0 for x in ranks), "second", sum(x == 1 for x in ranks), "of", len(ranks))


if __name__ == "__main__":
    main(sys.argv[1])
