"""The image-classifier interface.

Every classifier, whatever library defined it, is wrapped as a ``PixelClassifier``: an
``nn.Module`` mapping images in pixel space (float, NCHW, values in [0, 1], at the
model's input size) to logits. Normalisation lives inside the wrapper, so triggers,
masks and perturbations are optimised in the space where attackers paint them and a
wrong mean/std can't silently skew a detector.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class Preprocess:
    """How raw images become model input.

    size: (channels, height, width). mean/std: per-channel normalisation applied to
    [0, 1] pixels. source: where these values came from (a config file, or "default").
    defaults_used: the keys that were missing and filled from documented defaults.
    """

    size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    defaults_used: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "mean": list(self.mean), "std": list(self.std),
                "range": [0.0, 1.0], "source": self.source, "defaults_used": list(self.defaults_used)}


def _logits_of(output: Any) -> torch.Tensor:
    """transformers models return an output object; timm and plain modules a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"model output of type {type(output).__name__} carries no logits")


class PixelClassifier(nn.Module):
    """Wraps ``net`` so that it takes [0, 1] pixels and returns a logits tensor."""

    def __init__(self, net: nn.Module, mean, std, hf_style: bool = False):
        super().__init__()
        # Convolution weights in channels-last order: oneDNN's CPU kernels then run the detectors'
        # small-batch forward/backward passes 1.2-1.3 times faster (zoo ResNets, 2 threads, batch 16-160,
        # runs interleaved); the arithmetic is the same up to float rounding, and ViTs are unaffected.
        self.net = net.to(memory_format=torch.channels_last)
        self.hf_style = hf_style  # transformers models take pixel_values=...
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        out = self.net(pixel_values=z) if self.hf_style else self.net(z)
        return _logits_of(out)


@dataclass
class ClassifierAdapter:
    """What a classifier detector may use.

    model: a PixelClassifier (eval mode). Exposure works on ``clone()``s, never on it.
    labels: class names, index = class id.
    architecture: a human-readable name (e.g. "ResNetForImageClassification").
    weights_file: the file the weights came from (for report locations), if any.
    """

    model: PixelClassifier
    num_classes: int
    labels: list[str]
    preprocess: Preprocess
    architecture: str
    weights_file: str | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.preprocess.size

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Logits of the original model for pixel-space images, in eval mode."""
        self.model.eval()
        outs = [self.model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat(outs) if outs else torch.empty(0, self.num_classes)

    def predict(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        return self.logits(x, batch_size).argmax(1)

    def clone(self) -> PixelClassifier:
        """An independent copy of the model for exposure (the original stays untouched)."""
        return copy.deepcopy(self.model)

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "num_classes": self.num_classes,
                "labels": list(self.labels), "preprocess": self.preprocess.to_dict()}
