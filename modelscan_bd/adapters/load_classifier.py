"""Load a classifier snapshot (transformers or timm) into a ClassifierAdapter.

Weights come from safetensors only; configs from JSON; remote code is never enabled.
Preprocessing comes from the repo's own files; what is missing is filled from documented
defaults and named in ``Preprocess.defaults_used`` so the report can say so.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ..errors import CorruptFileError, InputError, UnsupportedModelError
from ..families import Family, read_json
from ..sources import Snapshot
from .classifier import ClassifierAdapter, PixelClassifier, Preprocess

# Documented defaults (README, "Preprocessing defaults"): ImageNet statistics, as the
# transformers and timm ResNet/ConvNeXt processors use, and 224 px.
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224


def load_classifier(snapshot: Snapshot, family: Family) -> ClassifierAdapter:
    torch.manual_seed(0)  # initialisation of weights the checkpoint lacks must not vary
    if family.library == "transformers":
        net, preprocess, labels, arch = _load_transformers(snapshot, family)
        hf_style = True
    elif family.library == "timm":
        net, preprocess, labels, arch = _load_timm(snapshot, family)
        hf_style = False
    else:  # pragma: no cover - families.identify only yields the two above for classifiers
        raise UnsupportedModelError(f"no classifier loader for library {family.library!r}")
    model = PixelClassifier(net, preprocess.mean, preprocess.std, hf_style=hf_style).eval()
    weights = _weights_files(snapshot)
    adapter = ClassifierAdapter(model=model, num_classes=len(labels), labels=labels, preprocess=preprocess,
                                architecture=arch, weights_file=weights[0].name if weights else None)
    check_input_size(adapter)
    return adapter


def check_input_size(adapter: ClassifierAdapter) -> None:
    """A model that cannot take its own declared input size is a configuration error."""
    c, h, w = adapter.input_size
    try:
        out = adapter.logits(torch.zeros(1, c, h, w))
    except Exception as exc:
        raise InputError(f"model does not accept images of size {c}x{h}x{w}: {str(exc).splitlines()[0][:200]}") from None
    if out.shape != (1, adapter.num_classes):
        raise InputError(f"model returns logits of shape {tuple(out.shape)}, expected (1, {adapter.num_classes})")


def _weights_files(snapshot: Snapshot) -> list[Path]:
    paths = [snapshot.file(r.path) for r in snapshot.files_of("safetensors") if r.present]
    return sorted(p for p in paths if p is not None)


def _labels_from(id2label: dict | None, n: int) -> list[str]:
    id2label = {int(k): str(v) for k, v in (id2label or {}).items()}
    return [id2label.get(i, f"class_{i}") for i in range(n)]


def _load_transformers(snapshot: Snapshot, family: Family):
    from transformers import AutoConfig, AutoModelForImageClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own status lines report progress
    hf_logging.set_verbosity_error()
    root = snapshot.path
    if not _weights_files(snapshot):
        raise UnsupportedModelError("no safetensors weights in the repo (pickle-based weights are never loaded)")
    try:
        config = AutoConfig.from_pretrained(root, trust_remote_code=False, local_files_only=True)
    except (ValueError, KeyError) as exc:
        raise UnsupportedModelError(f"unsupported architecture: {str(exc).splitlines()[0][:200]}") from None
    try:
        net = AutoModelForImageClassification.from_pretrained(
            root, config=config, use_safetensors=True, trust_remote_code=False, local_files_only=True)
    except ValueError as exc:
        raise UnsupportedModelError(f"unsupported architecture: {str(exc).splitlines()[0][:200]}") from None
    except (OSError, RuntimeError) as exc:
        raise CorruptFileError(f"could not load weights from {root.name}: {str(exc).splitlines()[0][:200]}") from None
    for p in _weights_files(snapshot):
        snapshot.mark_loaded(p)
    snapshot.mark_loaded(root / "config.json")
    n = int(getattr(config, "num_labels", 0) or len(getattr(config, "id2label", {}) or {}))
    preprocess = _transformers_preprocess(snapshot, config)
    return net.eval(), preprocess, _labels_from(config.id2label, n), type(net).__name__


def _transformers_preprocess(snapshot: Snapshot, config) -> Preprocess:
    channels = int(getattr(config, "num_channels", 3) or 3)
    path = snapshot.file("preprocessor_config.json")
    defaults: list[str] = []
    if path is None:
        size = int(getattr(config, "image_size", 0) or 0)
        if not size:
            size, _ = DEFAULT_SIZE, defaults.append("size")
        defaults += ["mean", "std"]
        return Preprocess((channels, size, size), _fit(DEFAULT_MEAN, channels), _fit(DEFAULT_STD, channels),
                          source="default (no preprocessor_config.json)", defaults_used=defaults)
    snapshot.mark_loaded(path)
    pp = read_json(path)
    h, w = _size_from(pp.get("crop_size") if pp.get("do_center_crop") else None) or _size_from(pp.get("size")) or (None, None)
    if h is None:
        s = int(getattr(config, "image_size", 0) or DEFAULT_SIZE)
        h = w = s
        defaults.append("size")
    if pp.get("do_normalize", True) is False:
        mean, std = (0.0,) * channels, (1.0,) * channels
    else:
        mean = pp.get("image_mean")
        std = pp.get("image_std")
        if mean is None:
            mean, _ = DEFAULT_MEAN, defaults.append("mean")
        if std is None:
            std, _ = DEFAULT_STD, defaults.append("std")
    return Preprocess((channels, int(h), int(w)), _fit(mean, channels), _fit(std, channels),
                      source="preprocessor_config.json", defaults_used=defaults)


def _size_from(size) -> tuple[int, int] | None:
    if isinstance(size, int):
        return size, size
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        if "shortest_edge" in size:
            return int(size["shortest_edge"]), int(size["shortest_edge"])
    return None


def _fit(values, channels: int) -> tuple[float, ...]:
    values = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    if len(values) == channels:
        return tuple(values)
    if len(values) == 1:
        return tuple(values * channels)
    if channels == 1:
        return (sum(values) / len(values),)
    raise InputError(f"preprocessing has {len(values)} channel statistics for a {channels}-channel model")


def _load_timm(snapshot: Snapshot, family: Family):
    import timm
    from safetensors.torch import load_file

    cfg = family.config
    weights = _weights_files(snapshot)
    if not weights:
        raise UnsupportedModelError("no safetensors weights in the repo (pickle-based weights are never loaded)")
    arch = cfg["architecture"]
    pcfg = cfg.get("pretrained_cfg") or {}
    input_size = pcfg.get("input_size") or cfg.get("input_size")
    defaults: list[str] = []
    if not input_size:
        input_size, _ = (3, DEFAULT_SIZE, DEFAULT_SIZE), defaults.append("size")
    channels = int(input_size[0])
    try:
        net = timm.create_model(arch, pretrained=False, num_classes=int(cfg["num_classes"]), in_chans=channels,
                                **(cfg.get("model_args") or {}))
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise UnsupportedModelError(f"unsupported timm architecture {arch!r}: {str(exc).splitlines()[0][:200]}") from None
    state: dict[str, torch.Tensor] = {}
    for p in weights:
        try:
            state.update(load_file(str(p)))
        except Exception as exc:
            raise CorruptFileError(f"corrupt safetensors file {p.name}: {str(exc).splitlines()[0][:200]}") from None
        snapshot.mark_loaded(p)
    _load_state(net, state, weights[0].name)
    snapshot.mark_loaded(snapshot.path / "config.json")
    mean, std = pcfg.get("mean"), pcfg.get("std")
    if mean is None:
        mean, _ = DEFAULT_MEAN, defaults.append("mean")
    if std is None:
        std, _ = DEFAULT_STD, defaults.append("std")
    n = int(cfg["num_classes"])
    labels = cfg.get("label_names") or [f"class_{i}" for i in range(n)]
    pre = Preprocess(tuple(int(v) for v in input_size), _fit(mean, channels), _fit(std, channels),
                     source="config.json pretrained_cfg" if pcfg else "default (no pretrained_cfg)",
                     defaults_used=defaults)
    return net.eval(), pre, [str(x) for x in labels][:n], arch


def _load_state(net: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise CorruptFileError(f"weights in {name} do not match the architecture: "
                               f"{len(missing)} missing, {len(result.unexpected_keys)} unexpected tensors "
                               f"(e.g. {(missing + result.unexpected_keys)[0]})")


def adapter_from_module(module: nn.Module, *, input_size: tuple[int, int, int], mean, std,
                        labels: list[str] | None = None, num_classes: int | None = None,
                        name: str | None = None) -> ClassifierAdapter:
    """The Python API's entry for custom architectures: any module mapping normalised
    NCHW images to logits (a tensor, or an object with ``.logits``).

    The adapter wraps a copy: wrapping puts the network in eval mode and its convolution weights in
    channels-last order, which must not change the caller's module (its mode, or its kernels' rounding)."""
    channels = input_size[0]
    wrapped = PixelClassifier(copy.deepcopy(module), _fit(mean, channels), _fit(std, channels)).eval()
    if num_classes is None:
        with torch.no_grad():
            try:
                num_classes = int(wrapped(torch.zeros(1, *input_size)).shape[1])
            except Exception as exc:
                raise InputError(f"model does not accept images of size {'x'.join(map(str, input_size))}: "
                                 f"{str(exc).splitlines()[0][:200]}") from None
    labels = list(labels) if labels else [f"class_{i}" for i in range(num_classes)]
    pre = Preprocess(tuple(input_size), _fit(mean, channels), _fit(std, channels), source="given by caller")
    adapter = ClassifierAdapter(model=wrapped, num_classes=num_classes, labels=labels, preprocess=pre,
                                architecture=name or type(module).__name__)
    check_input_size(adapter)
    return adapter
