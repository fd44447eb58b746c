"""Image datasets for the zoo, the tests and the benchmarks.

Real data comes from the project's ``.npz`` files (uint8 HWC images, int64 labels; see
``shared/data/README.md``); its folder is found through ``--data-dir``, the
``MODELSCAN_BD_DATA`` variable or ``../shared/data`` beside the checkout. Synthetic data
needs no files and is what unit tests use.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import InputError, UsageError

DATA_ENV = "MODELSCAN_BD_DATA"
DATASETS = ("cifar10", "gtsrb", "mnist")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
# Short forms of the official GTSRB class descriptions, in class-id order.
GTSRB_CLASSES = (
    "speed limit 20", "speed limit 30", "speed limit 50", "speed limit 60", "speed limit 70",
    "speed limit 80", "end of speed limit 80", "speed limit 100", "speed limit 120",
    "no passing", "no passing over 3.5t", "right-of-way at intersection", "priority road",
    "yield", "stop", "no vehicles", "over 3.5t prohibited", "no entry", "general caution",
    "dangerous curve left", "dangerous curve right", "double curve", "bumpy road",
    "slippery road", "road narrows on right", "road work", "traffic signals", "pedestrians",
    "children crossing", "bicycles crossing", "ice or snow", "wild animals crossing",
    "end of all limits", "turn right ahead", "turn left ahead", "ahead only",
    "straight or right", "straight or left", "keep right", "keep left", "roundabout",
    "end of no passing", "end of no passing over 3.5t")
MNIST_CLASSES = tuple(str(i) for i in range(10))
MNIST_TRAIN = 8000  # the MNIST file holds only the test set: 8000 train / 2000 test from it


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder holding the ``.npz`` datasets.

    Order: ``explicit``, then ``$MODELSCAN_BD_DATA``, then the first existing of
    ``<checkout>/../shared/data`` and ``<cwd>/../shared/data``.
    """
    chosen = explicit if explicit is not None else os.environ.get(DATA_ENV) or None
    if chosen is not None:
        path = Path(chosen).expanduser()
        if not path.is_dir():
            raise InputError(f"data folder not found: {path} (set {DATA_ENV} or pass --data-dir)")
        return path
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data",
                  Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    raise InputError(f"data folder not found: {candidates[0]} (set {DATA_ENV} or pass --data-dir)")


_find_data_dir = data_dir  # load_dataset's ``data_dir`` parameter shadows the function

# Seeds scan_images' draw apart from subset()'s stream of the same seed (a salt, not an image count).
SCAN_SALT = 500


@dataclass
class ImageDataset:
    """Images as uint8 NHWC numpy arrays (C = 1 or 3), labels as int64 arrays."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width), the layout models and attacks use."""
        _, h, w, c = self.train_x.shape
        return c, h, w

    @staticmethod
    def to_tensor(x_uint8: np.ndarray) -> torch.Tensor:
        """uint8 NHWC → float NCHW in [0, 1]."""
        return torch.from_numpy(np.ascontiguousarray(x_uint8)).permute(0, 3, 1, 2).float().div_(255.0)

    def first_classes(self, n: int) -> ImageDataset:
        """The images of labels 0..n-1 only: a zoo of another class count from the same data (GTSRB's
        first 20 signs, say), because the verdict's calibration depends on the class count."""
        if not 2 <= n <= self.num_classes:
            raise UsageError(f"{self.name} has {self.num_classes} classes; cannot keep the first {n}")
        tr, te = self.train_y < n, self.test_y < n
        return ImageDataset(self.name, self.train_x[tr], self.train_y[tr], self.test_x[te], self.test_y[te],
                            self.classes[:n])

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> ImageDataset:
        """A deterministic random subset with about the same class proportions."""
        rng = np.random.default_rng(seed)
        tr = _stratified_indices(self.train_y, n_train, rng)
        te = _stratified_indices(self.test_y, n_test, rng)
        return ImageDataset(self.name, self.train_x[tr], self.train_y[tr],
                            self.test_x[te], self.test_y[te], self.classes)

    def scan_images(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` test images (and labels) for a zoo's or the demo's scans, drawn per class in proportion.

        Not the first ``n``: a test split may be stored sorted by class (CIFAR-10's is), and its first
        500 images are then three classes of ten."""
        idx = _stratified_indices(self.test_y, n, np.random.default_rng([seed, SCAN_SALT]))
        return self.test_x[idx], self.test_y[idx]


def _stratified_indices(y: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``n`` sorted indices, drawn per class in proportion to its share
    (largest-remainder rounding); all indices when n is None or too large."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    quotas = n * counts / len(y)
    takes = np.floor(quotas).astype(int)
    takes[np.argsort(takes - quotas)[:n - takes.sum()]] += 1
    picked = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, takes)]
    return np.sort(np.concatenate(picked))  # sorted keeps the file's order


def _load_npz(folder: Path, filename: str) -> dict[str, np.ndarray]:
    path = folder / filename
    if not path.is_file():
        raise InputError(f"dataset file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> ImageDataset:
    """Load ``cifar10``, ``gtsrb`` or ``mnist`` from the data folder."""
    folder = _find_data_dir(data_dir)
    if name in ("cifar10", "gtsrb"):
        arrays = _load_npz(folder, f"{name}.npz")
        classes = CIFAR10_CLASSES if name == "cifar10" else GTSRB_CLASSES
        return ImageDataset(name, arrays["train_images"], arrays["train_labels"].astype(np.int64),
                            arrays["test_images"], arrays["test_labels"].astype(np.int64), classes)
    if name == "mnist":
        arrays = _load_npz(folder, "mnist_test.npz")
        images = arrays["images"][..., None]  # NHW → NHWC with one channel
        labels = arrays["labels"].astype(np.int64)
        order = np.random.default_rng(0).permutation(len(labels))
        tr, te = order[:MNIST_TRAIN], order[MNIST_TRAIN:]
        return ImageDataset(name, images[tr], labels[tr], images[te], labels[te], MNIST_CLASSES)
    raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def synthetic_dataset(num_classes: int = 10, image_size: int = 32, channels: int = 3,
                      n_train: int = 2000, n_test: int = 500, seed: int = 0) -> ImageDataset:
    """Easy, learnable images: each class is a sinusoidal grating of its own orientation
    and spatial frequency on its own background tint, with random phase, contrast, tint,
    position jitter and pixel noise per image. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    tints = rng.uniform(0.2, 0.6, size=(num_classes, channels))
    n = n_train + n_test
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    coords = np.arange(image_size, dtype=np.float64)
    rows, cols = np.meshgrid(coords, coords, indexing="ij")
    images = np.empty((n, image_size, image_size, channels), dtype=np.uint8)
    for i, c in enumerate(labels):
        angle = math.pi * c / num_classes + rng.normal(0, 0.05)
        period = image_size * (0.4 + 0.3 * ((c * 7) % 5) / 5) + rng.normal(0, 0.5)
        shift = rng.integers(-3, 4, size=2)  # position jitter of the grating
        phase = ((rows + shift[0]) * math.sin(angle) + (cols + shift[1]) * math.cos(angle)) * 2 * math.pi / period
        wave = 0.15 * rng.uniform(0.6, 1.0) * np.sin(phase + rng.uniform(0, 2 * math.pi))
        tint = tints[c] + rng.normal(0, 0.06, size=channels)  # so colour alone is not a perfect cue
        pixels = tint + wave[..., None] + rng.normal(0, 0.05, size=(image_size, image_size, channels))
        images[i] = np.clip(pixels * 255, 0, 255).round().astype(np.uint8)
    classes = tuple(f"class_{c:02d}" for c in range(num_classes))
    return ImageDataset("synthetic", images[:n_train], labels[:n_train].astype(np.int64),
                        images[n_train:], labels[n_train:].astype(np.int64), classes)
