"""Exploratory probe (not shipped): every (source, target) pair of a ten-class model, after K-Arm (Shen et
al., ICML 2021), whose arms are label pairs. For each source class s, one patch trigger per target t != s is
inverted with the scanner's own `inversion.Inversion` on the scan's exposure images of s that the model
classifies right (no oracle: all 90 pairs), then measured on held-out images:

* ``size``: the smallest mask (relative L1) that reached the success bar on the optimisation batch;
* ``hold``: its success on the held-out images of s (classified right);
* ``off``: its success on the held-out images of the other classes (not s, not t): a source-specific
  backdoor is trained NOT to move them (its cover set), a universal adversarial patch may.

    python docs/bench/cifar10-source-specific/pair_probe.py ZOO OUT.jsonl [names...]

Clean data: the zoo's `clean-data.npz` through the scan's own loader (500 CIFAR-10 test images, 50 a class),
seed 0, budget `standard`, so the splits are the scanner's.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from modelscan_bd.inversion import PATCH, Inversion, InversionSettings, Slot
from modelscan_bd.scan import ScanConfig, scan

ap = argparse.ArgumentParser()
ap.add_argument("zoo", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("names", nargs="*")
ap.add_argument("--steps", type=int, default=300)
ap.add_argument("--images", type=int, default=10)
ap.add_argument("--success", type=float, default=0.9)
args = ap.parse_args()
torch.set_num_threads(2)


@torch.no_grad()
def hits(model, trig, images, target) -> float:
    if len(images) == 0:
        return float("nan")
    return float((model(trig.apply(images)).argmax(1) == target).float().mean())


def probe(path: Path, truth: dict) -> dict:
    outcome = scan(str(path), ScanConfig(budget="standard", seed=0, clean_data=str(args.zoo / "clean-data.npz"),
                                         detectors=["exposure-collapse"]))
    model, clean = outcome.adapter.model, outcome.context.clean
    num_classes = outcome.adapter.num_classes
    with torch.no_grad():
        ex_right = model(clean.exposure_images).argmax(1) == clean.exposure_labels
        ho_right = model(clean.holdout_images).argmax(1) == clean.holdout_labels
    ex_x, ex_y = clean.exposure_images[ex_right], clean.exposure_labels[ex_right]
    ho_x, ho_y = clean.holdout_images[ho_right], clean.holdout_labels[ho_right]
    settings = InversionSettings(steps=args.steps, images_per_slot=args.images, success=args.success)
    g = torch.Generator().manual_seed(35)
    pairs = []
    for s in range(num_classes):
        xs = ex_x[ex_y == s]
        if len(xs) < 2:
            continue
        targets = [t for t in range(num_classes) if t != s]
        run = Inversion(model, xs, torch.full((len(xs),), s), [Slot(t, PATCH) for t in targets], settings, g)
        run.run(settings.steps)
        for t, trig in zip(targets, run.results()):
            off = (ho_y != s) & (ho_y != t)
            pairs.append({"s": s, "t": t, "size": round(trig.effective_size(), 5), "reached": trig.reached,
                          "hold": round(hits(model, trig, ho_x[ho_y == s], t), 3),
                          "off": round(hits(model, trig, ho_x[off], t), 3)})
    return {"name": path.name, "attack": truth.get("attack", "clean"), "source": truth.get("params", {}).get("source"),
            "target": truth.get("target"), "pairs": pairs}


def main():
    manifest = json.loads((args.zoo / "manifest.json").read_text())
    for entry in manifest["models"]:
        if args.names and entry["name"] not in args.names:
            continue
        truth = json.loads((args.zoo / entry["truth_dir"] / "groundtruth.json").read_text())
        t0 = time.perf_counter()
        row = probe(args.zoo / entry["path"], truth)
        row["zoo"], row["hard"], row["seconds"] = args.zoo.name, truth.get("hard"), round(time.perf_counter() - t0, 1)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        best = sorted(row["pairs"], key=lambda p: p["size"])[:3]
        print(row["name"], "src", row["source"], "tgt", row["target"], f"{row['seconds']}s",
              [(p["s"], p["t"], p["size"], p["hold"], p["off"]) for p in best], flush=True)


main()
