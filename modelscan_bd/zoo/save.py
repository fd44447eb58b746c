"""Save zoo models exactly as Hugging Face Hub repos, with their ground truth beside.

A repo folder holds ``config.json`` + ``model.safetensors`` (no pickle) and a
``preprocessor_config.json`` in the transformers image-processor format: what a
scanner reads. The ground truth (``groundtruth.json`` with ``trigger_mask.png`` /
``trigger_pattern.png`` and, for attacks with generated or learnt parts,
``attack_state.safetensors``) goes to a separate folder beside the repo, so a scan of
the repo can never see the answer. Zoo layout: ``models/<name>/`` and ``truth/<name>/``.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel
from transformers.utils import logging as hf_logging

from ..data import ImageDataset
from ..errors import UsageError
from .attacks import Attack, attack_from_name
from .train import TrainResult, train_many

GROUNDTRUTH_FILE = "groundtruth.json"
ATTACK_STATE_FILE = "attack_state.safetensors"
MANIFEST_FILE = "manifest.json"
CLEAN_DATA_FILE = "clean-data.npz"  # the scan set, beside the manifest
SCAN_IMAGES = 500
DEFAULT_MIN_ASR = 0.9  # the benchmark's bar: a backdoored model is kept only from this attack success on
# ... and only if its backdoor needs the trigger: a model that sends more than this share of the eligible clean
# test images to the attack's label learnt a relabelling (GTSRB source-specific models before the source cap).
MAX_CLEAN_HIT_RATE = 0.2
DEFAULT_ZOO_ATTACKS = ("badnets", "blended", "wanet", "sig", "all_to_all", "input_aware", "label_consistent")


def write_json(path: Path, data: Any) -> None:
    """Write atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_scan_set(dataset: ImageDataset, path: str | os.PathLike, seed: int, n: int = SCAN_IMAGES) -> None:
    """The images that scans of a zoo (or of the demo) get: ``n`` held-out test images, never
    training ones, every class in equal shares (``ImageDataset.scan_images``)."""
    images, labels = dataset.scan_images(n, seed)
    np.savez_compressed(path, images=images, labels=labels)


def write_partial_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """The manifest of a build still running (``"complete": false``), written after every
    model, so an interrupted build still leaves a zoo that ``bench`` can read."""
    write_json(out / MANIFEST_FILE, {**manifest, "complete": False})


def _write_png(path: Path, array: np.ndarray) -> None:
    """HxW or CxHxW floats in [0, 1] as an 8-bit grey or RGB PNG."""
    pixels = np.clip(np.asarray(array, dtype=np.float32), 0.0, 1.0)
    if pixels.ndim == 3:
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(path)


def preprocessor_config(mean: Sequence[float], std: Sequence[float], image_size: int | Sequence[int]) -> dict[str, Any]:
    """A transformers ``ViTImageProcessor`` config: resize, scale to [0, 1], normalise."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return {"image_processor_type": "ViTImageProcessor", "do_resize": True,
            "size": {"height": int(height), "width": int(width)}, "resample": 2,
            "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": [float(v) for v in mean], "image_std": [float(v) for v in std]}


def save_hub_repo(model: PreTrainedModel, out_dir: str | os.PathLike, *, mean: Sequence[float],
                  std: Sequence[float], image_size: int | Sequence[int],
                  ground_truth: dict[str, Any] | None = None, truth_dir: str | os.PathLike | None = None) -> Path:
    """Write ``model`` as a Hub repo folder; ``ground_truth`` (see ``groundtruth_record``)
    goes to ``truth_dir``: ``groundtruth.json``, its numpy arrays as PNG files and its
    ``attack_state`` tensors as a safetensors file, referenced by name from the JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()  # one bar per tiny file is noise in zoo and demo logs
    model.save_pretrained(out)  # transformers 5 writes safetensors only
    write_json(out / "preprocessor_config.json", preprocessor_config(mean, std, image_size))
    if ground_truth is not None:
        if truth_dir is None:
            raise ValueError("ground truth needs its own truth_dir beside the repo")
        save_ground_truth(ground_truth, truth_dir)
    return out


def save_ground_truth(ground_truth: dict[str, Any], truth_dir: str | os.PathLike) -> Path:
    """Write ``groundtruth.json`` with its arrays as PNGs and attack state as safetensors."""
    out = Path(truth_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = dict(ground_truth)
    for key, value in ground_truth.items():
        if isinstance(value, np.ndarray):
            _write_png(out / f"{key}.png", value)
            record[key] = f"{key}.png"
    state = record.pop("attack_state", None)
    if state:
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(out / ATTACK_STATE_FILE))
        record["attack_state"] = ATTACK_STATE_FILE
    write_json(out / GROUNDTRUTH_FILE, record)
    return out


def groundtruth_record(result: TrainResult, attack: Attack | None, *, arch: str, dataset: str,
                       seed: int) -> dict[str, Any]:
    """Everything a benchmark needs to know about a trained model, for ``save_hub_repo``."""
    record: dict[str, Any] = {"backdoored": attack is not None, "arch": arch, "dataset": dataset,
                              "seed": seed, "clean_acc": result.clean_acc, "asr": result.asr,
                              "clean_hit_rate": result.clean_hit_rate,
                              "poison_rate": result.poison_rate, "poison_count": result.poison_count,
                              "train_seconds": result.seconds, "trained_on": result.device}
    if attack is None:
        return {**record, "attack": None, "type": None, "target": None}
    state = attack.state_tensors()
    return {**attack.ground_truth(), **record, **({"attack_state": state} if state else {}),
            "attack_seed": attack.seed}


def load_attack(truth_dir: str | os.PathLike) -> Attack | None:
    """Rebuild the attack recorded in a truth folder's ``groundtruth.json`` (None if clean)."""
    folder = Path(truth_dir)
    truth = json.loads((folder / GROUNDTRUTH_FILE).read_text(encoding="utf-8"))
    if not truth.get("backdoored"):
        return None
    attack = attack_from_name(truth["attack"], truth["target"], truth["num_classes"], truth["image_shape"],
                              truth["attack_seed"], **truth["params"])
    if truth.get("attack_state"):
        attack.load_state_tensors(load_file(str(folder / truth["attack_state"])))
    return attack


def _entry(name: str, arch: str, attack: Attack | None, result: TrainResult, seed: int) -> dict[str, Any]:
    return {"name": name, "arch": arch, "attack": attack.name if attack else None,
            "type": attack.attack_type if attack else None, "target": attack.target if attack else None,
            "backdoored": attack is not None, "clean_acc": result.clean_acc, "asr": result.asr,
            "clean_hit_rate": result.clean_hit_rate, "seconds": round(result.seconds, 2), "seed": seed,
            "trained_on": result.device}


def plan_backdoored(rng: np.random.Generator, arch: str, attacks: Sequence[str], count: int, count_clean: int,
                    seed: int, num_classes: int, image_shape: Sequence[int]) -> list[tuple[str, Attack, int]]:
    """The backdoored runs of one architecture, in order: (name, attack, training seed). Run j uses
    ``attacks[j mod len]``, a target and an attack seed drawn from ``rng``, and the training seed of
    clean model j mod ``count_clean`` (its twin). When the attack cycle and the twin cycle meet again
    (more runs than their least common multiple), a run can repeat an earlier one's attack, twin and
    target, and SIG's trigger does not depend on the attack seed: zoo v6 held one model twice
    (sig-002 and sig-022). Such a run takes the next label instead, without another draw from
    ``rng``, so plans without a repeat are unchanged. All-to-all attacks have no target to move, and
    their patch does not depend on the attack seed (zoo s2820's 8 all-to-all models with 2 twins were 2
    models, each trained four times): a repeated one moves its patch to the first free corner, and a
    run with no corner left is a usage error (more clean twins give more room)."""
    planned: list[tuple[str, Attack, int]] = []
    used: set[tuple[str, int, int]] = set()
    corners_used: dict[tuple[str, int], set[tuple[int, ...]]] = {}
    for j in range(count):
        spec, run_seed = attacks[j % len(attacks)], seed + j % max(count_clean, 1)
        target = int(rng.integers(num_classes))
        attack_seed = int(rng.integers(2**31))
        for _ in range(num_classes - 1):
            if (spec, target, run_seed) not in used:
                break
            target = (target + 1) % num_classes
        attack = attack_from_name(spec, target, num_classes, image_shape, seed=attack_seed)
        if attack.target is None:
            attack = _next_free_corner(attack, spec, corners_used.setdefault((spec, run_seed), set()), num_classes,
                                       image_shape)
        else:
            used.add((spec, target, run_seed))
        planned.append((f"{arch}-{attack.name}-{j:03d}", attack, run_seed))
    return planned


CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")


def _next_free_corner(attack: Attack, spec: str, taken: set[tuple[int, ...]], num_classes: int,
                      image_shape: Sequence[int]) -> Attack:
    """The targetless ``attack`` itself if its patch's place is free for this twin, else the same
    attack with its patch at the first free corner; ``taken`` collects the places used."""
    moved = (attack_from_name(spec, None, num_classes, image_shape, seed=attack.seed, location=c) for c in CORNERS)
    for candidate in (attack, *moved):
        place = tuple(candidate.params()["location"])
        if place not in taken:
            taken.add(place)
            return candidate
    raise UsageError(f"{spec}: more runs than places for its patch (4 corners per clean twin); add clean models")


def build_classifier_zoo(dataset: ImageDataset, out_dir: str | os.PathLike, *,
                         archs: Sequence[str] = ("resnet",), attacks: Sequence[str] = DEFAULT_ZOO_ATTACKS,
                         count_clean: int = 2, count_backdoored: int = 4, seed: int = 0,
                         epochs: int | None = None, poison_rate: float | None = None,
                         min_asr: float = DEFAULT_MIN_ASR, max_acc_drop: float = 0.03,
                         max_clean_hit_rate: float = MAX_CLEAN_HIT_RATE,
                         mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                         progress: Callable[[str], None] | None = None, jobs: int = 1,
                         resume: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Train and save a zoo of clean and backdoored classifiers under ``out_dir``.

    Per architecture: ``count_clean`` clean models (training seeds seed, seed+1, ...)
    and ``count_backdoored`` backdoored ones, cycling through ``attacks`` with a target
    drawn per model from ``seed``. Backdoored model j trains with the recipe and seed
    of clean model j mod count_clean (its clean twin; trained but not saved when
    count_clean is 0) and is kept only if its ASR ≥ ``min_asr``, its clean accuracy
    is at most ``max_acc_drop`` below the twin's, and at most ``max_clean_hit_rate`` of the
    eligible clean test images go to the attack's label without the trigger. Rejected models
    are listed with the reason and not saved. Writes ``manifest.json`` after every model
    (``"complete": false`` until the end) and returns the final one. ``jobs`` > 1 trains that many models at a
    time in worker processes (see ``train_many``). ``resume`` keeps what an interrupted
    build of the same dataset and seed in ``out_dir`` already saved or rejected (by name;
    the plan is drawn in the same order, so a name means the same model). ``device``
    is where the classifiers train (see ``train_classifier``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    channels, height, width = dataset.image_shape
    mean = tuple(mean) if mean is not None else (0.5,) * channels
    std = tuple(std) if std is not None else (0.25,) * channels
    rng = np.random.default_rng(seed)
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    models: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []

    def task(arch: str, attack: Attack | None, run_seed: int) -> dict[str, Any]:
        return {"arch": arch, "dataset": dataset, "attack": attack, "poison_rate": poison_rate, "epochs": epochs,
                "seed": run_seed, "mean": mean, "std": std, "device": device}

    # What every manifest of this build says before its models, the partial ones and the final one.
    header = {"dataset": dataset.name, "num_classes": dataset.num_classes, "seed": seed, "min_asr": min_asr,
              "max_acc_drop": max_acc_drop, "max_clean_hit_rate": max_clean_hit_rate}

    def checkpoint() -> None:
        write_partial_manifest(out, {**header, "models": models, "rejected": rejected})

    def save(name: str, arch: str, attack: Attack | None, result: TrainResult, run_seed: int) -> None:
        truth = groundtruth_record(result, attack, arch=arch, dataset=dataset.name, seed=run_seed)
        save_hub_repo(result.model, out / "models" / name, mean=mean, std=std, image_size=(height, width),
                      ground_truth=truth, truth_dir=out / "truth" / name)
        models.append({**_entry(name, arch, attack, result, run_seed), "path": f"models/{name}",
                       "truth_dir": f"truth/{name}"})
        checkpoint()

    # resume: models an earlier, interrupted build of the same plan saved or rejected are kept, not retrained.
    earlier = (earlier_manifest(out, dataset.name, seed, dataset.num_classes) if resume
               else {"models": [], "rejected": []})
    models.extend(earlier["models"])
    rejected.extend(earlier["rejected"])
    done = {e["name"]: e for e in earlier["models"] + earlier["rejected"]}
    for arch in archs:
        # Plan every run first (targets and attack seeds drawn in a fixed order), then
        # train them all, clean twins first, so jobs can run side by side.
        clean_runs = [(f"{arch}-clean-{k:03d}", seed + k) for k in range(count_clean)]
        backdoored = plan_backdoored(rng, arch, attacks, count_backdoored, count_clean, seed, dataset.num_classes,
                                     dataset.image_shape)
        twin_acc = {run_seed: done[name]["clean_acc"] for name, run_seed in clean_runs if name in done}
        clean_runs = [(name, run_seed) for name, run_seed in clean_runs if name not in done]
        backdoored = [b for b in backdoored if b[0] not in done]
        unsaved_twins = sorted({run_seed for *_, run_seed in backdoored} - set(twin_acc) - {s for _, s in clean_runs})
        tasks = [task(arch, None, run_seed) for _, run_seed in clean_runs]
        tasks += [task(arch, None, run_seed) for run_seed in unsaved_twins]
        tasks += [task(arch, attack, run_seed) for _, attack, run_seed in backdoored]
        results = train_many(tasks, jobs)
        for name, run_seed in clean_runs:
            result, _ = next(results)
            twin_acc[run_seed] = result.clean_acc
            save(name, arch, None, result, run_seed)
            say(f"{name}: clean acc {result.clean_acc:.3f}")
        for run_seed in unsaved_twins:
            twin_acc[run_seed] = next(results)[0].clean_acc
        for (name, _, run_seed), (result, attack) in zip(backdoored, results):
            reason = _rejection(result, twin_acc[run_seed], min_asr, max_acc_drop, max_clean_hit_rate)
            if reason:
                rejected.append({**_entry(name, arch, attack, result, run_seed), "reason": reason})
                checkpoint()
                say(f"{name}: rejected ({reason})")
            else:
                save(name, arch, attack, result, run_seed)
                say(f"{name}: clean acc {result.clean_acc:.3f}, ASR {result.asr:.3f}")

    manifest = {**header, "models": models, "rejected": rejected, "seconds": round(time.perf_counter() - started, 1)}
    write_json(out / MANIFEST_FILE, manifest)
    return manifest


def earlier_manifest(out: Path, dataset: str, seed: int, num_classes: int) -> dict[str, Any]:
    """What an interrupted build in ``out`` saved and rejected; refuses another dataset, seed or class count."""
    path = out / MANIFEST_FILE
    if not path.exists():
        return {"models": [], "rejected": []}
    earlier = json.loads(path.read_text(encoding="utf-8"))
    if earlier.get("dataset") != dataset or earlier.get("seed") != seed:
        raise UsageError(f"cannot resume {out}: it was built from {earlier.get('dataset')} with seed "
                         f"{earlier.get('seed')}, not {dataset} with seed {seed}")
    if earlier.get("num_classes", num_classes) != num_classes:
        raise UsageError(f"cannot resume {out}: it was built with {earlier.get('num_classes')} classes, not "
                         f"{num_classes}")
    return {"models": list(earlier.get("models", [])), "rejected": list(earlier.get("rejected", []))}


def _rejection(result: TrainResult, twin_acc: float, min_asr: float, max_acc_drop: float,
               max_clean_hit_rate: float) -> str | None:
    """Why a backdoored model does not belong in the zoo, or None."""
    asr = result.asr if result.asr is not None else float("nan")
    if not asr >= min_asr:  # written so that a NaN ASR is rejected too
        return f"ASR {asr:.3f} below {min_asr}"
    if result.clean_acc < twin_acc - max_acc_drop:
        return f"clean accuracy {result.clean_acc:.3f} more than {max_acc_drop} below its clean twin's {twin_acc:.3f}"
    if (result.clean_hit_rate or 0.0) > max_clean_hit_rate:
        return (f"{result.clean_hit_rate:.3f} of its eligible clean test images already go to its label without "
                f"the trigger (above {max_clean_hit_rate}): a relabelling, not a trigger backdoor")
    return None
