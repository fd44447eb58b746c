"""Clean reference data for exposure and detection.

``--clean-data PATH`` is an image folder (one subfolder per class) or an ``.npz`` with
images and labels. Images are resized to the model's input size. When the data's
labels don't match the model's label space (different class names, out-of-range ids,
or agreement with the model no better than twice chance), the original model's own
predictions serve as labels: exposure needs labels the model agrees with, not ground
truth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .adapters.classifier import ClassifierAdapter
from .detectors.base import CleanData
from .errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".gif"}
NPZ_KEYS = [("images", "labels"), ("x", "y"), ("test_images", "test_labels"), ("train_images", "train_labels")]
HOLDOUT_SHARE = 0.4  # detectors measure on images exposure never trained on


def load_clean_data(path: str | Path, adapter: ClassifierAdapter, budget: int = 500, seed: int = 0) -> CleanData:
    path = Path(path)
    if not path.exists():
        raise InputError(f"clean data not found: {path}")
    if path.is_dir():
        images, labels, names = _read_folder(path)
    elif path.suffix == ".npz":
        images, labels, names = _read_npz(path)
    else:
        raise InputError(f"clean data must be an image folder or an .npz file: {path}")
    if len(images) == 0:
        raise InputError(f"clean data holds no images: {path}")
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(images))[: min(budget, len(images))])
    x = to_model_input([images[i] for i in keep], adapter.input_size)
    y_data = None if labels is None else torch.as_tensor(np.asarray(labels)[keep], dtype=torch.long)
    y, label_source = _labels_for_model(x, y_data, names, adapter)
    return _split(x, y, label_source, str(path), seed)


def from_arrays(images: torch.Tensor, labels: torch.Tensor | None, adapter: ClassifierAdapter,
                source: str = "in-memory", seed: int = 0) -> CleanData:
    """Clean data given as tensors (pixel space, model size) - for the Python API and tests."""
    c, h, w = adapter.input_size
    if images.ndim != 4 or tuple(images.shape[1:]) != (c, h, w):
        raise InputError(f"clean images have shape {tuple(images.shape[1:])}, the model takes {c}x{h}x{w}")
    y, label_source = _labels_for_model(images.float(), labels, None, adapter)
    return _split(images.float(), y, label_source, source, seed)


def _split(x: torch.Tensor, y: torch.Tensor, label_source: str, source: str, seed: int) -> CleanData:
    """Disjoint exposure and held-out index sets, drawn from the seed."""
    n_hold = max(1, int(round(len(x) * HOLDOUT_SHARE))) if len(x) > 1 else 0
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return CleanData(images=x, labels=y, label_source=label_source, source=source,
                     exposure_idx=order[n_hold:], holdout_idx=order[:n_hold])


def _read_folder(root: Path) -> tuple[list[np.ndarray], list[int] | None, list[str] | None]:
    from PIL import Image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    entries = ([(p, i) for i, c in enumerate(classes) for p in sorted((root / c).rglob("*"))
                if p.suffix.lower() in IMAGE_SUFFIXES] if classes else
               [(p, -1) for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES])
    images = []
    for p, _ in entries:
        try:
            with Image.open(p) as im:
                images.append(np.asarray(im.convert("RGB")))
        except OSError as exc:
            raise InputError(f"unreadable image in clean data: {p} ({exc})") from None
    labels = [i for _, i in entries] if classes else None
    return images, labels, classes or None


def _read_npz(path: Path) -> tuple[list[np.ndarray], np.ndarray | None, None]:
    try:
        data = np.load(path, allow_pickle=False)  # never unpickle user data
        key = next(((xk, yk) for xk, yk in NPZ_KEYS if xk in data.files), None)
        if key is None:
            raise InputError(f"{path.name} has none of the image keys {[k for k, _ in NPZ_KEYS]}")
        images = data[key[0]]  # arrays load lazily: object arrays fail here
        labels = data[key[1]] if key[1] in data.files else None
    except (ValueError, OSError) as exc:
        raise InputError(f"unreadable .npz clean data {path.name}: {exc}") from None
    if images.ndim not in (3, 4):
        raise InputError(f"{path.name}: images must be NHW or NHWC/NCHW, got shape {images.shape}")
    return list(images), labels, None


def to_model_input(images: list[np.ndarray], size: tuple[int, int, int]) -> torch.Tensor:
    """uint8 or float images (HW, HWC or CHW) -> float NCHW in [0, 1] at the model's size."""
    c, h, w = size
    out = []
    for im in images:
        arr = np.asarray(im)
        arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
        if arr.ndim == 2:
            arr = arr[None]
        elif arr.shape[-1] in (1, 3, 4) and arr.shape[0] not in (1, 3):
            arr = arr.transpose(2, 0, 1)
        arr = arr[:3]
        if arr.shape[0] != c:
            arr = arr.mean(0, keepdims=True) if c == 1 else np.repeat(arr[:1], c, axis=0)
        out.append(torch.from_numpy(np.ascontiguousarray(arr)))
    x = torch.stack([t if t.shape[1:] == (h, w) else
                     F.interpolate(t[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
                     for t in out])
    return x.clamp(0.0, 1.0)


def _labels_for_model(x: torch.Tensor, y: torch.Tensor | None, names: list[str] | None,
                      adapter: ClassifierAdapter) -> tuple[torch.Tensor, str]:
    preds = adapter.predict(x)
    c = adapter.num_classes
    if names is not None and y is not None:
        lookup = {n.lower(): i for i, n in enumerate(adapter.labels)}
        if all(n.lower() in lookup for n in names):
            y = torch.tensor([lookup[names[int(i)].lower()] for i in y])
        elif not all(n.isdigit() for n in names):
            return preds, "model predictions (folder class names are not the model's labels)"
        else:
            y = torch.tensor([int(names[int(i)]) for i in y])
    if y is None:
        return preds, "model predictions (the data has no labels)"
    if int(y.min()) < 0 or int(y.max()) >= c:
        return preds, "model predictions (dataset labels are outside the model's label space)"
    agreement = float((preds == y).float().mean())
    if agreement <= 2.0 / c:
        return preds, f"model predictions (dataset labels agree with the model on only {agreement:.0%})"
    return y, f"dataset labels (model agrees on {agreement:.0%})"
