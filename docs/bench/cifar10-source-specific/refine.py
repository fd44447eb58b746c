"""Exploratory (not shipped): the K smallest pairs of each model's `pair_probe.py` record inverted again,
longer and on more images per step, then measured on held-out images of the source (``hold``), of the other
classes (``off``), and of the source shifted by 1-2 px beneath the trigger (``jitter``: a planted patch keeps
working where the image moves, an adversarial patch fitted to the image's own features may not).

    python docs/bench/cifar10-source-specific/refine.py PROBE.jsonl ZOO_ROOT OUT.jsonl [--top 5]
"""
import argparse
import json
from pathlib import Path

import torch

from modelscan_bd.inversion import PATCH, Inversion, InversionSettings, Slot
from modelscan_bd.scan import ScanConfig, scan

ap = argparse.ArgumentParser()
ap.add_argument("probe", type=Path)
ap.add_argument("zoo_root", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--top", type=int, default=5)
ap.add_argument("--steps", type=int, default=600)
ap.add_argument("--images", type=int, default=16)
args = ap.parse_args()
torch.set_num_threads(2)
SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1), (2, 2), (-2, -2))


@torch.no_grad()
def hits(model, trig, images, target) -> float:
    if len(images) == 0:
        return float("nan")
    return float((model(trig.apply(images)).argmax(1) == target).float().mean())


def refine(row: dict) -> dict:
    zoo = args.zoo_root / row["zoo"]
    outcome = scan(str(zoo / "models" / row["name"]), ScanConfig(budget="standard", seed=0,
                   clean_data=str(zoo / "clean-data.npz"), detectors=["exposure-collapse"]))
    model, clean = outcome.adapter.model, outcome.context.clean
    with torch.no_grad():
        ex_right = model(clean.exposure_images).argmax(1) == clean.exposure_labels
        ho_right = model(clean.holdout_images).argmax(1) == clean.holdout_labels
    ex_x, ex_y = clean.exposure_images[ex_right], clean.exposure_labels[ex_right]
    ho_x, ho_y = clean.holdout_images[ho_right], clean.holdout_labels[ho_right]
    settings = InversionSettings(steps=args.steps, images_per_slot=args.images, success=0.9)
    g = torch.Generator().manual_seed(36)
    out = []
    for p in sorted(row["pairs"], key=lambda p: p["size"])[: args.top]:
        s, t = p["s"], p["t"]
        xs = ex_x[ex_y == s]
        trig = Inversion(model, xs, torch.full((len(xs),), s), [Slot(t, PATCH)], settings, g)
        trig.run(settings.steps)
        trig = trig.results()[0]
        held = ho_x[ho_y == s]
        jitter = sum(hits(model, trig, torch.roll(held, shifts=d, dims=(2, 3)), t) for d in SHIFTS) / len(SHIFTS)
        out.append({"s": s, "t": t, "size0": p["size"], "size": round(trig.effective_size(), 5),
                    "hold": round(hits(model, trig, held, t), 3),
                    "off": round(hits(model, trig, ho_x[(ho_y != s) & (ho_y != t)], t), 3),
                    "jitter": round(jitter, 3)})
    return {k: row[k] for k in ("zoo", "name", "attack", "source", "target", "hard")} | {"refined": out}


for line in args.probe.open():
    r = refine(json.loads(line))
    with args.out.open("a") as f:
        f.write(json.dumps(r) + "\n")
    print(r["zoo"][-5:], r["name"], r["source"], r["target"],
          [(q["s"], q["t"], q["size0"], q["size"], q["hold"], q["off"], q["jitter"]) for q in r["refined"]], flush=True)
