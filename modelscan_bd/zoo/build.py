"""``modelscan-bd zoo build classifiers``: a benchmark zoo on real (or synthetic) data.

Layout: ``models/<name>/`` (a hub-format repo), ``truth/<name>/`` (its ground truth),
``clean-data.npz`` (held-out test images for scanning) and ``manifest.json``.

Besides the clean twins, "hard" clean models are where detectors false-flag:
* ``spurious``: one class carries a small natural motif on half its training images
  (a genuine, clean-label feature that looks like a trigger);
* ``imbalanced``: three classes keep only a fifth of their images;
* ``long``: twice the epochs (sharper, more overconfident decision boundaries).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data import ImageDataset, load_dataset, synthetic_dataset
from .save import (CLEAN_DATA_FILE, DEFAULT_MIN_ASR, DEFAULT_ZOO_ATTACKS, MANIFEST_FILE, build_classifier_zoo,
                   earlier_manifest, groundtruth_record, save_hub_repo, write_json, write_partial_manifest,
                   write_scan_set)
from .train import DEFAULT_EPOCHS, TrainResult, train_many

HARD_KINDS = ("spurious", "imbalanced", "long")


def build_zoo(data_name: str, out: Path, *, data_dir: str | None, n_clean: int, n_backdoored: int, n_hard: int,
              archs: list[str], attacks: list[str] | None, train_size: int, epochs: int | None, seed: int,
              progress: Callable[[str], None], jobs: int = 1, resume: bool = False,
              device: str = "cpu", image_size: int = 32,
              min_asr: float = DEFAULT_MIN_ASR, classes: int | None = None) -> dict[str, Any]:
    if data_name == "synthetic":
        dataset = synthetic_dataset(image_size=image_size, n_train=train_size, n_test=1000, seed=seed)
    else:
        dataset = load_dataset(data_name, data_dir)
    if classes is not None:
        dataset = dataset.first_classes(classes)
    if data_name != "synthetic":
        dataset = dataset.subset(n_train=train_size, n_test=2000, seed=seed)
    progress(f"{dataset.name}: {len(dataset.train_y)} training, {len(dataset.test_y)} test images")
    if resume:  # refuse before anything in OUT is overwritten
        earlier_manifest(out, dataset.name, seed, dataset.num_classes)
    out.mkdir(parents=True, exist_ok=True)  # clean data first, so a partial zoo can already be benchmarked
    write_scan_set(dataset, out / CLEAN_DATA_FILE, seed)
    manifest = build_classifier_zoo(dataset, out, archs=archs, attacks=tuple(attacks or DEFAULT_ZOO_ATTACKS),
                                    count_clean=n_clean, count_backdoored=n_backdoored, seed=seed, epochs=epochs,
                                    progress=progress, jobs=jobs, resume=resume, device=device, min_asr=min_asr)
    manifest["clean_data"] = CLEAN_DATA_FILE
    write_partial_manifest(out, manifest)
    plans = [_hard_plan(dataset, HARD_KINDS[k % len(HARD_KINDS)], k, archs[0], seed + 1000 + k, epochs, device)
             for k in range(n_hard)]
    saved = {m["name"] for m in manifest["models"]}
    plans = [plan for plan in plans if plan["name"] not in saved]  # resume: hard models saved earlier
    for plan, (result, _) in zip(plans, train_many([plan["task"] for plan in plans], jobs)):
        manifest["models"].append(_save_hard(dataset, out, plan, result, progress))
        write_partial_manifest(out, manifest)
    write_json(out / MANIFEST_FILE, manifest)
    return manifest


def _hard_plan(dataset: ImageDataset, kind: str, k: int, arch: str, seed: int, epochs: int | None,
               device: str) -> dict[str, Any]:
    """The training run of one hard clean model, and what makes it hard."""
    rng = np.random.default_rng(seed)
    data, run_epochs, detail = dataset, epochs or DEFAULT_EPOCHS[arch], {}
    if kind == "spurious":
        cls = int(rng.integers(dataset.num_classes))
        data, detail = _with_motif(dataset, cls, rng), {"motif_class": cls}
    elif kind == "imbalanced":
        rare = rng.choice(dataset.num_classes, size=3, replace=False).tolist()
        keep = np.array([y not in rare or rng.random() < 0.2 for y in dataset.train_y])
        data, detail = replace(dataset, train_x=dataset.train_x[keep], train_y=dataset.train_y[keep]), {"rare": rare}
    else:
        run_epochs *= 2
    return {"name": f"{arch}-hard-{kind}-{k:03d}", "kind": kind, "arch": arch, "seed": seed, "detail": detail,
            "task": {"arch": arch, "dataset": data, "attack": None, "epochs": run_epochs, "seed": seed,
                     "device": device}}


def _save_hard(dataset: ImageDataset, out: Path, plan: dict[str, Any], result: TrainResult,
               progress: Callable[[str], None]) -> dict[str, Any]:
    name, arch, seed = plan["name"], plan["arch"], plan["seed"]
    truth = {**groundtruth_record(result, None, arch=arch, dataset=dataset.name, seed=seed), "hard": plan["kind"],
             **plan["detail"]}
    c, h, w = dataset.image_shape
    save_hub_repo(result.model, out / "models" / name, mean=(0.5,) * c, std=(0.25,) * c, image_size=(h, w),
                  ground_truth=truth, truth_dir=out / "truth" / name)
    progress(f"{name}: clean acc {result.clean_acc:.3f}")
    return {"name": name, "arch": arch, "attack": None, "type": None, "target": None, "backdoored": False,
            "hard": plan["kind"], "clean_acc": result.clean_acc, "asr": None, "seconds": round(result.seconds, 2),
            "seed": seed, "path": f"models/{name}", "truth_dir": f"truth/{name}"}


def _with_motif(dataset: ImageDataset, cls: int, rng: np.random.Generator) -> ImageDataset:
    """A 4x4 two-tone motif at a random place on half the images of one class."""
    x = dataset.train_x.copy()
    colours = rng.integers(0, 256, size=(2, x.shape[-1]))
    idx = np.flatnonzero(dataset.train_y == cls)
    for i in idx[rng.random(len(idx)) < 0.5]:
        r, c = rng.integers(0, x.shape[1] - 4), rng.integers(0, x.shape[2] - 4)
        x[i, r:r + 4, c:c + 4] = colours[0]
        x[i, r + 1:r + 3, c + 1:c + 3] = colours[1]
    return replace(dataset, train_x=x)
