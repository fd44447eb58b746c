"""Shared fixtures: tiny models trained here, placed in an offline hub cache.

The hub library reads HF_HUB_OFFLINE / HF_HUB_CACHE when it is imported, so they are
set at the top of this file, before anything imports huggingface_hub.
"""
from __future__ import annotations

import os
import tempfile

_HUB_CACHE = tempfile.mkdtemp(prefix="msbd-hub-cache-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = _HUB_CACHE
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402  (does not import huggingface_hub)

_SESSION_THREADS = torch.get_num_threads()

TARGET = 4  # the tiny backdoored model's target label
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
IMAGE_SIZE = 32


@pytest.fixture(scope="session")
def hub_cache() -> Path:
    return Path(_HUB_CACHE)


@pytest.fixture(scope="session")
def synthetic():
    from modelscan_bd.data import synthetic_dataset

    return synthetic_dataset(num_classes=10, image_size=IMAGE_SIZE, n_train=2000, n_test=600, seed=0)


def _train_and_publish(dataset, attack, seed: int, folder: Path, repo_id: str, cache: Path) -> Path:
    from modelscan_bd.hubcache import place_in_cache
    from modelscan_bd.zoo.save import save_hub_repo
    from modelscan_bd.zoo.train import train_classifier

    result = train_classifier("resnet", dataset, attack, epochs=6, batch_size=64, seed=seed, mean=MEAN, std=STD)
    # The end-to-end tests mean something only if the backdoor really works.
    assert result.clean_acc >= 0.8 and (attack is None or result.asr >= 0.9), (result.clean_acc, result.asr)
    save_hub_repo(result.model, folder, mean=MEAN, std=STD, image_size=IMAGE_SIZE)
    place_in_cache(folder, repo_id, cache)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, synthetic, hub_cache):
    """A BadNets-backdoored tiny ResNet and its clean twin, as hub repos in the offline cache."""
    from modelscan_bd.zoo.attacks import BadNets

    root = tmp_path_factory.mktemp("models")
    attack = BadNets(TARGET, synthetic.num_classes, synthetic.image_shape, seed=0)
    return {
        "backdoored": _train_and_publish(synthetic, attack, 0, root / "tiny-badnets", "testorg/tiny-badnets", hub_cache),
        "clean": _train_and_publish(synthetic, None, 0, root / "tiny-clean", "testorg/tiny-clean", hub_cache),
    }


@pytest.fixture(scope="session")
def clean_npz(tmp_path_factory, synthetic) -> Path:
    """Held-out synthetic test images as an .npz, the --clean-data format."""
    path = tmp_path_factory.mktemp("data") / "clean.npz"
    np.savez_compressed(path, images=synthetic.test_x, labels=synthetic.test_y)
    return path


def cli_exit_code(args: list[str]) -> int:
    """Run the real CLI entry point in-process (usable from session fixtures); returns its exit code."""
    from modelscan_bd.cli import main

    old = sys.argv
    sys.argv = ["modelscan-bd", *map(str, args)]
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        sys.argv = old
    return int(exc.value.code or 0)


def detector_context(path: Path, clean_data: Path, budget: str):
    """A saved classifier repo loaded by the real loader, and a detector context holding the clean
    data from ``clean_data`` (seed 0, ``budget``): (adapter, context)."""
    from modelscan_bd.adapters.load_classifier import load_classifier
    from modelscan_bd.cleandata import load_clean_data
    from modelscan_bd.detectors.base import ScanContext
    from modelscan_bd.families import identify
    from modelscan_bd.sources import resolve

    snap = resolve(str(path))
    adapter = load_classifier(snap, identify(snap))
    return adapter, ScanContext(seed=0, budget=budget, clean=load_clean_data(clean_data, adapter))


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the real CLI entry point in-process; returns (exit code, stdout, stderr)."""
    code = cli_exit_code(args)
    out, err = capsys.readouterr()
    return code, out, err


def copy_repo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module", autouse=True)
def torch_threads_restored():
    """Each module ends with torch's thread count as the session began: a session fixture
    that trains on one thread, or a CLI call with ``--threads``, sets it for the whole
    process, and the modules after it then ran on one thread unasked (the merge gate's
    tests 1.4x slower)."""
    yield
    torch.set_num_threads(_SESSION_THREADS)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models: a second buys nothing, and on a shared
    2-core machine OpenMP threads spin-waiting behind other jobs slowed such files ~5x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
