"""Tiny 16x16 classifiers for detector tests, trained in the test.

Data: 10 classes, class k = a hue on the colour wheel (equal saturation and brightness)
plus a sinusoidal grating at angle k*18 degrees, plus noise. Classes are built alike on
purpose, so that no class is intrinsically easier to push ahead than another.
"""
from __future__ import annotations

import colorsys
import math

import torch
from torch import nn

from modelscan_bd.adapters.classifier import ClassifierAdapter, PixelClassifier, Preprocess

C, S = 10, 16
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _class_patterns() -> tuple[torch.Tensor, torch.Tensor]:
    palette = torch.tensor([colorsys.hsv_to_rgb(k / C, 0.6, 0.7) for k in range(C)])
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    gratings = torch.stack([
        torch.sin(2 * math.pi * (xx * math.cos(math.pi * k / C) + yy * math.sin(math.pi * k / C)) / 5)
        for k in range(C)])
    return palette.view(C, 3, 1, 1), gratings.view(C, 1, S, S)


def make_data(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    palette, gratings = _class_patterns()
    y = torch.randint(0, C, (n,), generator=g)
    x = palette[y] + 0.15 * gratings[y] + 0.1 * torch.randn(n, 3, S, S, generator=g)
    return x.clamp(0, 1), y


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * (S // 4) ** 2, C))


def fit(x: torch.Tensor, y: torch.Tensor, g: torch.Generator, epochs: int) -> ClassifierAdapter:
    """Train a fresh tiny CNN on (x, y) with Adam, batches drawn from ``g``."""
    model = PixelClassifier(tiny_cnn(), MEAN, STD)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return ClassifierAdapter(model, C, [f"class{k}" for k in range(C)],
                             Preprocess(size=(3, S, S), mean=MEAN, std=STD, source="test"), "tiny-cnn")


def train_poisoned(seed: int, poison=None, target: int = 3, epochs: int = 4) -> ClassifierAdapter:
    """A tiny CNN on 2,000 images; with ``poison`` (a function of a batch of images), 10 % of
    them are passed through it and relabelled to ``target`` (dirty-label)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = make_data(2000, g)
    if poison is not None:
        idx = torch.randperm(len(x), generator=g)[: len(x) // 10]
        x[idx] = poison(x[idx])
        y[idx] = target
    return fit(x, y, g, epochs)


def detector_runs(detector, poison, target: int = 3, seeds=(0, 1), epochs: int = 4) -> dict:
    """A clean and a ``poison``-backdoored tiny model per seed, each run through ``detector`` at
    ``standard`` on 300 fresh clean images: {(seed, backdoored): (adapter, findings, context)}."""
    from modelscan_bd.cleandata import from_arrays
    from modelscan_bd.detectors.base import ScanContext

    out = {}
    for seed in seeds:
        for backdoor in (False, True):
            adapter = train_poisoned(seed, poison if backdoor else None, target, epochs)
            x, y = make_data(300, torch.Generator().manual_seed(100 + seed))
            context = ScanContext(seed=seed, budget="standard", clean=from_arrays(x, y, adapter, seed=seed))
            out[(seed, backdoor)] = (adapter, detector.run(adapter, context), context)
    return out
