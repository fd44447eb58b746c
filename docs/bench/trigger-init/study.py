"""Saliency-seeded against uniform mask starts for patch trigger inversion (PLAN.md).

    python docs/bench/trigger-init/study.py ZOO [ZOO ...] > OUT.jsonl
    STARTS=uniform:20,uniform:21,sparse:20,sparse:21 python ...   # other starts (../trigger-sparse, s60)

One JSON line per (model, start). Uses the scanner's own loader, clean-data split and inversion; only the
mask's starting logits differ. The saliency start follows the trigger-localisation idea of SentiNet (Chou et
al., 2020) and Februus (Doan et al., 2020), which read a trigger's place off input gradients; here the
gradient seeds Neural Cleanse's optimisation instead of cutting the image.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from modelscan_bd.bench import mask_iou
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.detectors.trigger import _log_ratio
from modelscan_bd.families import identify
from modelscan_bd.inversion import PATCH, Inversion, InversionSettings, Slot, success_rate
from modelscan_bd.scan import FAMILY_SCANNERS
from modelscan_bd.sources import resolve

STARTS = [(kind, int(salt)) for kind, salt in (item.split(":") for item in os.environ.get(
    "STARTS", "uniform:20,uniform:21,saliency:20,saliency:21").split(","))]
SPARSE_LOGIT = -4.0  # a "sparse" start: every mask pixel at sigmoid(-4) = 0.018 instead of the scanner's 0.12


def saliency(model, images, labels, label: int, n: int = 64) -> torch.Tensor:
    """Mean absolute input gradient of the cross-entropy toward ``label`` over up to n images of other
    labels, summed over channels and scaled to a maximum of 1: (H, W)."""
    x = images[labels != label][:n].clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), torch.full((len(x),), label))
    grad, = torch.autograd.grad(loss, x)
    sal = grad.abs().sum(1).mean(0)
    return sal / sal.max().clamp(min=1e-12)


def log_ratios(sizes: list[float]) -> list[float]:
    """Per label, trigger recovery's statistic: the other labels' median size over its own (log)."""
    return [_log_ratio(sizes[:i] + sizes[i + 1:], size) for i, size in enumerate(sizes)]


def study_model(zoo: Path, entry: dict) -> list[dict]:
    name = entry["name"]
    snap = resolve(str(zoo / entry["path"]), lambda m: None)
    adapter = FAMILY_SCANNERS["classifier"][0](snap, identify(snap))
    clean = load_clean_data(str(zoo / "clean-data.npz"), adapter, budget=500, seed=0)
    rng = np.random.default_rng(entry["seed"])
    n = adapter.num_classes
    if entry["backdoored"]:
        others = [k for k in range(n) if k != entry["target"]]
        labels = [entry["target"]] + [int(k) for k in rng.choice(others, size=3, replace=False)]
    else:
        labels = [int(k) for k in rng.choice(n, size=4, replace=False)]
    mask_file = zoo / entry["truth_dir"] / "trigger_mask.png"
    true_mask = None
    if mask_file.exists():
        true_mask = np.asarray(Image.open(mask_file), dtype=float) / 255
        true_mask = true_mask[..., 0] if true_mask.ndim == 3 else true_mask
    slots = [Slot(t, PATCH) for t in labels]
    settings = InversionSettings(steps=300, images_per_slot=16)
    sal = {t: saliency(adapter.model, clean.exposure_images, clean.exposure_labels, t) for t in labels}
    rows = []
    for init, salt in STARTS:
        t0 = time.perf_counter()
        run = Inversion(adapter.model, clean.exposure_images, clean.exposure_labels, slots, settings,
                        torch.Generator().manual_seed(salt))
        if init == "saliency":
            with torch.no_grad():
                for i, t in enumerate(labels):
                    run.mask_logit[i] = -4.0 + 5.0 * sal[t][None]
        elif init == "sparse":
            with torch.no_grad():
                run.mask_logit.fill_(SPARSE_LOGIT)
        run.run(settings.steps)
        out = run.results()
        sizes = [t.effective_size() for t in out]
        ratios = log_ratios(sizes)
        rows.append({
            "zoo": zoo.name, "model": name, "attack": entry.get("attack") or "clean", "hard": entry.get("hard"),
            "backdoored": entry["backdoored"], "labels": labels, "init": init, "generator": salt,
            "sizes": [round(s, 5) for s in sizes], "log_ratio": round(ratios[0], 4),
            "max_log_ratio": round(max(ratios), 4),
            "holdout_success": round(success_rate(adapter.model, out[0], clean.holdout_images,
                                                  clean.holdout_labels), 4),
            "iou": None if true_mask is None else mask_iou(out[0].mask, true_mask),
            "saliency_iou": None if true_mask is None else mask_iou(sal[labels[0]][None], true_mask),
            "seconds": round(time.perf_counter() - t0, 2)})
    return rows


def main(zoos: list[str]) -> None:
    torch.manual_seed(0)
    for z in zoos:
        zoo = Path(z)
        manifest = json.loads((zoo / "manifest.json").read_text())
        for entry in manifest["models"]:
            if entry["backdoored"] and entry.get("attack") not in ("badnets", "label_consistent"):
                continue
            for row in study_model(zoo, entry):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
