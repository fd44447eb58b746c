"""``modelscan-bd demo``: train a small backdoored classifier and its clean twin here,
publish both as hub repos in a local (offline) hub cache, scan both, write reports.

CIFAR-10 from the data folder when present (see ``data.data_dir``), synthetic images
otherwise. The scans go through the same code as ``modelscan-bd scan org/name``: the
hub cache is laid out in huggingface_hub's format and read with HF_HUB_OFFLINE=1.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ORG = "modelscan-demo"
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _use_offline_cache(cache: Path) -> bool:
    """Point huggingface_hub at our cache; only possible before it is imported."""
    if "huggingface_hub" in sys.modules:
        return False
    os.environ["HF_HUB_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    return True


def run_demo(out: Path, data_dir: str | None, seed: int, budget: str, epochs: int,
             progress: Callable[[str], None]) -> list[dict]:
    via_hub = _use_offline_cache(out / "hub-cache")
    from .data import load_dataset, synthetic_dataset
    from .errors import InputError
    from .hubcache import place_in_cache
    from .reports import write_reports
    from .scan import ScanConfig, scan
    from .zoo.attacks import BadNets
    from .zoo.save import CLEAN_DATA_FILE, groundtruth_record, save_hub_repo, write_scan_set
    from .zoo.train import train_classifier

    try:
        dataset = load_dataset("cifar10", data_dir).subset(n_train=10000, n_test=2000, seed=seed)
    except InputError as exc:
        progress(f"{exc}; using synthetic images instead")
        dataset = synthetic_dataset(num_classes=10, image_size=32, n_train=3000, n_test=1000, seed=seed)
    progress(f"dataset: {dataset.name}, {len(dataset.train_y)} training images")
    target = int(np.random.default_rng(seed).integers(dataset.num_classes))
    clean_npz = out / CLEAN_DATA_FILE
    clean_npz.parent.mkdir(parents=True, exist_ok=True)
    # Scans get held-out test images, never the training images.
    write_scan_set(dataset, clean_npz, seed)

    rows = []
    for name, attack in (("tiny-resnet-badnets", BadNets(target, dataset.num_classes, dataset.image_shape, seed=seed)),
                         ("tiny-resnet-clean", None)):
        progress(f"training {name} ({'BadNets, target ' + str(target) if attack else 'clean'})")
        result = train_classifier("resnet", dataset, attack, epochs=epochs, seed=seed, mean=MEAN, std=STD)
        asr = "-" if result.asr is None else f"{result.asr:.3f}"
        progress(f"  clean accuracy {result.clean_acc:.3f}, attack success {asr}, {result.seconds:.0f}s")
        repo = save_hub_repo(result.model, out / "models" / name, mean=MEAN, std=STD, image_size=32)
        truth = groundtruth_record(result, attack, arch="resnet", dataset=dataset.name, seed=seed)
        truth_file = out / "models" / f"{name}.groundtruth.json"  # beside the repo, not inside it
        truth_file.write_text(json.dumps({k: v for k, v in truth.items() if _jsonable(v)}, indent=2))
        source = f"{ORG}/{name}" if via_hub else str(repo)
        if via_hub:
            place_in_cache(repo, source, out / "hub-cache")
        progress(f"scanning {source}")
        t = time.perf_counter()
        outcome = scan(source, ScanConfig(budget=budget, seed=seed, clean_data=str(clean_npz)), progress)
        seconds = time.perf_counter() - t
        written = write_reports(outcome.report, out / "reports" / name, ["json", "html", "sarif"])
        verdict = outcome.report["verdict"]
        rows.append({"model": name, "truth": f"backdoored (target {target})" if attack else "clean",
                     "verdict": verdict["status"], "probability": verdict["probability"],
                     "suspected": [t["label"] for t in verdict["suspected_targets"]],
                     "scan_seconds": round(seconds, 1),
                     "peak_memory_mb": outcome.report["timing"]["peak_memory_mb"],
                     "correct": (verdict["status"] == "BACKDOORED" and [target] == [t["label"] for t in verdict["suspected_targets"]])
                     if attack else verdict["status"] == "CLEAN",
                     "html": written["html"]})
    return rows


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'model':22} {'truth':24} {'verdict':11} {'p':>5} {'target':>6} {'scan s':>7} {'peak MB':>8}  ok"]
    for r in rows:
        lines.append(f"{r['model']:22} {r['truth']:24} {r['verdict']:11} {r['probability'] or 0:5.2f} "
                     f"{','.join(map(str, r['suspected'])) or '-':>6} {r['scan_seconds']:7.1f} "
                     f"{r['peak_memory_mb'] or 0:8.0f}  {'yes' if r['correct'] else 'NO'}")
    return "\n".join(lines)
