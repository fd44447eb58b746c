"""Backdoor attacks on image classifiers, written from the papers.

Defaults follow BackdoorBench (Wu et al., NeurIPS 2022 Datasets and Benchmarks) for
CIFAR-10. Every attack works in pixel space: images are float NCHW tensors in [0, 1].

How the training code uses an attack (see ``zoo/train.py``):

1. ``fit(x_train, generator)`` once: attacks that learn part of their trigger before
   the classifier (Input-aware's mask generator) do it here.
2. ``poison_candidates(y)`` says which training samples may be poisoned; the trainer
   picks ``poison_rate × N`` of them once, and ``prepare_poison(x, y, surrogate)``
   may modify those images once (Label-consistent's adversarial perturbation).
3. Per batch, after augmentation: ``poison_batch`` on the batch's poisoned samples;
   ``extra_batch`` on ``round(extra_ratio × n_poisoned)`` of its clean samples, which
   it replaces (WaNet's noise samples, Input-aware's cross samples, the
   source-specific cover set: triggered-looking samples that keep their true label);
   and ``regularizer`` added to the loss. ``param_groups`` are optimised with the
   classifier (Input-aware's pattern generator).
4. ``apply_trigger``, ``asr_mask`` and ``asr_target`` measure attack success.

``params()`` returns exactly the keyword arguments that rebuild the attack through
``attack_from_name``, so a ground-truth file is enough to reproduce it (together with
``state_tensors()`` for attacks with learnt parts).
"""
from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

Surrogate = Callable[[Tensor], Tensor]  # pixel-space images → logits


class Attack(ABC):
    """A backdoor attack: trigger, poisoning rule and success criterion."""

    name: ClassVar[str]
    attack_type: ClassVar[str] = "all-to-one"
    trigger_mode: ClassVar[str] = "blend"  # how the trigger combines with an image
    default_poison_rate: ClassVar[float] = 0.1  # share of the whole training set
    max_candidate_share: ClassVar[float] = 1.0  # the most of ``poison_candidates`` the trainer may poison
    needs_surrogate: ClassVar[bool] = False  # prepare_poison wants a clean model

    def __init__(self, target: int | None, num_classes: int, image_shape: Sequence[int], seed: int = 0):
        if target is not None and not 0 <= target < num_classes:
            raise ValueError(f"target {target} outside 0..{num_classes - 1}")
        self.target = target
        self.num_classes = num_classes
        self.image_shape = tuple(int(v) for v in image_shape)  # (C, H, W)
        self.seed = seed

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The attack's hyper-parameters (JSON-able; the factory's keyword arguments)."""

    @abstractmethod
    def apply_trigger(self, x: Tensor) -> Tensor:
        """The test-time trigger applied to images x (NCHW, [0, 1])."""

    def fit(self, x_train: Tensor, generator: torch.Generator) -> None:
        """Learn whatever the attack needs before the classifier trains (default: nothing)."""

    def prepare_poison(self, x: Tensor, y: Tensor, surrogate: Surrogate | None) -> Tensor:
        """Modify the chosen poison images once, before augmentation (default: unchanged)."""
        return x

    def poison_batch(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """How training samples chosen for poisoning are modified: trigger and wanted label."""
        return self.apply_trigger(x), self.asr_target(y)

    @property
    def extra_ratio(self) -> float:
        """How many clean samples of a batch ``extra_batch`` replaces per poisoned sample."""
        return 0.0

    def extra_batch(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Turn clean samples of a batch into the attack's extra samples (default: unchanged)."""
        return x, y

    def regularizer(self, x: Tensor, generator: torch.Generator) -> Tensor | None:
        """An extra loss term for the batch's images (default: none)."""
        return None

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups trained jointly with the classifier, each with its
        own learning rate if it sets one (default: none)."""
        return []

    def poison_candidates(self, y: Tensor) -> Tensor:
        """Which training samples may be poisoned: all non-target samples here."""
        return y != self.target

    def asr_mask(self, y: Tensor) -> Tensor:
        """Which test samples count for attack success: all non-target samples here."""
        return y != self.target

    def asr_target(self, y: Tensor) -> Tensor:
        """The label the attack wants for triggered samples of true label y."""
        return torch.full_like(y, self.target)

    def trigger_arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(mask HxW, pattern CxHxW) in [0, 1] where a single one exists."""
        return None, None

    def state_tensors(self) -> dict[str, Tensor]:
        """Learnt or generated state needed to reproduce the trigger exactly."""
        return {}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore what ``state_tensors`` returned."""

    def ground_truth(self) -> dict[str, Any]:
        """What a detector should find: attack, type, target(s), trigger."""
        mask, pattern = self.trigger_arrays()
        truth: dict[str, Any] = {
            "attack": self.name, "type": self.attack_type, "target": self.target,
            "params": self.params(), "seed": self.seed, "trigger_mode": self.trigger_mode,
            "num_classes": self.num_classes, "image_shape": list(self.image_shape)}
        if mask is not None:
            truth["trigger_mask"] = mask
        if pattern is not None:
            truth["trigger_pattern"] = pattern
        return truth


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pick(n_from: int, n: int, generator: torch.Generator) -> Tensor:
    """n random distinct indices below n_from."""
    return torch.randperm(n_from, generator=generator)[:min(n, n_from)]


class _MaskPatternAttack(Attack):
    """A trigger of the form x' = (1 - m)·x + m·p with a fixed mask m and pattern p."""

    mask: Tensor  # (1, 1, H, W)
    pattern: Tensor  # (1, C, H, W)

    def apply_trigger(self, x: Tensor) -> Tensor:
        return x + self.mask * (self.pattern - x)

    def trigger_arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self.mask[0, 0].numpy().copy(), self.pattern[0].numpy().copy()


def _corner_origin(location: str | Sequence[int], size: int, height: int, width: int) -> tuple[int, int]:
    """Top-left (row, col) of a size×size patch at a named corner or explicit position."""
    corners = {"top-left": (0, 0), "top-right": (0, width - size),
               "bottom-left": (height - size, 0), "bottom-right": (height - size, width - size)}
    if isinstance(location, str):
        if location not in corners:
            raise ValueError(f"unknown location {location!r}; choose one of {', '.join(corners)}")
        return corners[location]
    row, col = (int(v) for v in location)
    if not (0 <= row <= height - size and 0 <= col <= width - size):
        raise ValueError(f"patch at {(row, col)} of size {size} leaves the {height}x{width} image")
    return row, col


def _patch(channels: int, size: int, color: Sequence[float], checkerboard: bool) -> Tensor:
    """The patch's pixels (C, size, size): one colour, or that colour alternating with black."""
    values = torch.tensor(list(color) * channels if len(color) == 1 else list(color), dtype=torch.float32)
    if values.numel() != channels:
        raise ValueError(f"colour has {values.numel()} values for {channels} channels")
    patch = values.view(channels, 1, 1).expand(channels, size, size).clone()
    if checkerboard:
        rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        patch = patch * ((rows + cols) % 2 == 0).float()
    return patch


class BadNets(_MaskPatternAttack):
    """BadNets (Gu, Dolan-Gavitt & Garg, "BadNets: Identifying Vulnerabilities in the
    Machine Learning Model Supply Chain", 2017): a small patch stamped on the image,
    poisoned samples relabelled to the target. Default: 3×3 white square in the
    bottom-right corner (BackdoorBench); ``checkerboard`` alternates colour and black.
    """

    name = "badnets"

    def __init__(self, target: int | None, num_classes: int, image_shape: Sequence[int], seed: int = 0, *,
                 size: int = 3, location: str | Sequence[int] = "bottom-right",
                 color: Sequence[float] = (1.0,), checkerboard: bool = False):
        super().__init__(target, num_classes, image_shape, seed)
        channels, height, width = self.image_shape
        self.size, self.checkerboard = size, checkerboard
        self.color = [float(v) for v in color]
        self.origin = _corner_origin(location, size, height, width)
        row, col = self.origin
        self.mask = torch.zeros(1, 1, height, width)
        self.mask[..., row:row + size, col:col + size] = 1.0
        self.pattern = torch.zeros(1, channels, height, width)
        self.pattern[0, :, row:row + size, col:col + size] = _patch(channels, size, self.color, checkerboard)

    def params(self) -> dict[str, Any]:
        return {"size": self.size, "location": list(self.origin), "color": self.color,
                "checkerboard": self.checkerboard}


class AllToAll(BadNets):
    """All-to-all BadNets (Gu et al. 2017, §4): the BadNets patch maps label y to
    (y + 1) mod C, so every sample may be poisoned and every test sample counts."""

    name = "all_to_all"
    attack_type = "all-to-all"

    def __init__(self, target: None, num_classes: int, image_shape: Sequence[int], seed: int = 0, **kw: Any):
        if target is not None:
            raise ValueError("an all-to-all attack has no single target; pass target=None")
        super().__init__(None, num_classes, image_shape, seed, **kw)

    def poison_candidates(self, y: Tensor) -> Tensor:
        return torch.ones_like(y, dtype=torch.bool)

    def asr_mask(self, y: Tensor) -> Tensor:
        return torch.ones_like(y, dtype=torch.bool)

    def asr_target(self, y: Tensor) -> Tensor:
        return (y + 1) % self.num_classes

    def ground_truth(self) -> dict[str, Any]:
        return {**super().ground_truth(), "target_map": [(c + 1) % self.num_classes for c in range(self.num_classes)]}


class SourceSpecific(BadNets):
    """Source-specific BadNets (Gu et al. 2017; the cover-set defence evasion of Tang
    et al., "Demon in the Variant", USENIX Security 2021): only triggered samples of
    the source class go to the target; triggered samples of other classes (the cover
    set, ``cover_ratio`` per poisoned sample) keep their true labels.
    ``source`` defaults to a class other than the target drawn from the seed.
    """

    name = "source_specific"
    attack_type = "source-specific"
    default_poison_rate = 0.05  # half of one class of ten: the rest keeps it learnable
    # A source class must keep clean samples under its own label: poisoned whole, the model learns to
    # relabel the class, no trigger needed (GTSRB's rare classes hold less than 5 % of the set). 0.6
    # leaves CIFAR-10 zoos as they were (5 % of the set is about half of one class of ten).
    max_candidate_share = 0.6

    def __init__(self, target: int, num_classes: int, image_shape: Sequence[int], seed: int = 0, *,
                 source: int | None = None, cover_ratio: float = 1.0, **kw: Any):
        super().__init__(target, num_classes, image_shape, seed, **kw)
        if source is None:
            source = (target + 1 + int(torch.randint(num_classes - 1, (1,), generator=_seeded(seed)))) % num_classes
        if source == target or not 0 <= source < num_classes:
            raise ValueError(f"source {source} must be a class other than the target {target}")
        self.source, self.cover_ratio = source, cover_ratio

    def params(self) -> dict[str, Any]:
        return {**super().params(), "source": self.source, "cover_ratio": self.cover_ratio}

    def poison_candidates(self, y: Tensor) -> Tensor:
        return y == self.source

    def asr_mask(self, y: Tensor) -> Tensor:
        return y == self.source

    @property
    def extra_ratio(self) -> float:
        return self.cover_ratio

    def extra_batch(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The cover set: triggered samples of other classes keep their labels (source
        samples stay clean, since a triggered one belongs to the target)."""
        cover = (y != self.source).view(-1, 1, 1, 1)
        return torch.where(cover, self.apply_trigger(x), x), y

    def ground_truth(self) -> dict[str, Any]:
        return {**super().ground_truth(), "source": self.source}


def _smooth_noise(channels: int, height: int, width: int, generator: torch.Generator) -> Tensor:
    """Multi-scale value noise in [0, 1] per channel: a structured, image-like pattern."""
    total = torch.zeros(1, channels, height, width)
    for cells, weight in ((4, 1.0), (8, 0.5), (16, 0.25)):
        coarse = torch.rand(1, channels, cells, cells, generator=generator)
        total += weight * F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    low = total.amin(dim=(2, 3), keepdim=True)
    high = total.amax(dim=(2, 3), keepdim=True)
    return (total - low) / (high - low)


class Blended(_MaskPatternAttack):
    """Blended injection (Chen, Liu, Li, Lu & Song, "Targeted Backdoor Attacks on Deep
    Learning Systems Using Data Poisoning", 2017): x' = (1 - α)·x + α·p for a fixed
    pattern image p. BackdoorBench blends a Hello Kitty picture; we generate a seeded
    multi-scale noise image instead so no file is downloaded. α defaults to 0.15.
    """

    name = "blended"

    def __init__(self, target: int, num_classes: int, image_shape: Sequence[int], seed: int = 0, *,
                 alpha: float = 0.15):
        super().__init__(target, num_classes, image_shape, seed)
        channels, height, width = self.image_shape
        self.alpha = alpha
        self.mask = torch.full((1, 1, height, width), float(alpha))
        self.pattern = _smooth_noise(channels, height, width, _seeded(seed))

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class SIG(Attack):
    """SIG (Barni, Kallas & Tondi, "A New Backdoor Attack in CNNs by Training Set
    Corruption Without Label Poisoning", ICIP 2019): a clean-label attack adding a
    horizontal sinusoid v(i, j) = Δ·sin(2π·j·f / W) to target-class training images
    (labels kept). Defaults Δ = 40 (of 255), f = 6 (BackdoorBench).
    """

    name = "sig"
    attack_type = "clean-label"
    trigger_mode = "additive"
    default_poison_rate = 0.08  # of the whole set: 80 % of one class of ten

    def __init__(self, target: int, num_classes: int, image_shape: Sequence[int], seed: int = 0, *,
                 delta: float = 40.0, frequency: float = 6.0):
        super().__init__(target, num_classes, image_shape, seed)
        channels, height, width = self.image_shape
        self.delta, self.frequency = delta, frequency
        cols = torch.arange(width, dtype=torch.float32)
        wave = (delta / 255.0) * torch.sin(2 * math.pi * cols * frequency / width)
        self.signal = wave.view(1, 1, 1, width).expand(1, channels, height, width).clone()

    def params(self) -> dict[str, Any]:
        return {"delta": self.delta, "frequency": self.frequency}

    def apply_trigger(self, x: Tensor) -> Tensor:
        return (x + self.signal).clamp(0.0, 1.0)

    def poison_batch(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.apply_trigger(x), y

    def poison_candidates(self, y: Tensor) -> Tensor:
        return y == self.target

    def trigger_arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The whole image is the mask; the pattern is the signal shifted by 0.5 (additive)."""
        _, height, width = self.image_shape
        return np.ones((height, width), dtype=np.float32), (self.signal[0] + 0.5).numpy().copy()


class WaNet(Attack):
    """WaNet (Nguyen & Tran, "WaNet - Imperceptible Warping-based Backdoor Attack",
    ICLR 2021): the trigger is a fixed smooth warping field. A k×k grid of random
    offsets, normalised to mean magnitude 1, is upsampled (bicubic) to the image size,
    scaled by s / size and added to the identity sampling grid; images are resampled
    with ``grid_sample``. Noise mode: for each poisoned sample, ``cross_ratio`` clean
    samples are warped with the field plus per-pixel random noise and keep their true
    label, so the network learns the exact field rather than any warp.
    Defaults k = 4, s = 0.5, grid_rescale = 1, cross_ratio = 2 (BackdoorBench).
    """

    name = "wanet"
    trigger_mode = "warp"

    def __init__(self, target: int, num_classes: int, image_shape: Sequence[int], seed: int = 0, *,
                 k: int = 4, s: float = 0.5, grid_rescale: float = 1.0, cross_ratio: float = 2.0):
        super().__init__(target, num_classes, image_shape, seed)
        _, height, width = self.image_shape
        self.k, self.s, self.grid_rescale, self.cross_ratio = k, s, grid_rescale, cross_ratio
        offsets = torch.rand(1, 2, k, k, generator=_seeded(seed)) * 2 - 1
        offsets = offsets / offsets.abs().mean()
        field = F.interpolate(offsets, size=(height, width), mode="bicubic", align_corners=True)
        field = field.permute(0, 2, 3, 1)  # (1, H, W, 2) as grid_sample wants, (x, y) last
        self.scale = torch.tensor([width, height], dtype=torch.float32)  # offsets are in pixels / size
        self.grid = ((self._identity_grid() + s * field / self.scale) * grid_rescale).clamp(-1, 1)

    def _identity_grid(self) -> Tensor:
        _, height, width = self.image_shape
        rows, cols = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        return torch.stack((cols, rows), dim=-1)[None]

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "s": self.s, "grid_rescale": self.grid_rescale, "cross_ratio": self.cross_ratio}

    def _warp(self, x: Tensor, grid: Tensor) -> Tensor:
        return F.grid_sample(x, grid.expand(len(x), -1, -1, -1), align_corners=True)

    def apply_trigger(self, x: Tensor) -> Tensor:
        return self._warp(x, self.grid)

    @property
    def extra_ratio(self) -> float:
        return self.cross_ratio

    def extra_batch(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Noise mode: the field plus up to one pixel of random offset, true labels kept."""
        _, height, width = self.image_shape
        noise = (torch.rand(len(x), height, width, 2, generator=generator) * 2 - 1) / self.scale
        return self._warp(x, (self.grid + noise).clamp(-1, 1)), y

    def trigger_arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """No patch; the mask shows where pixels move, normalised to [0, 1]."""
        shift = ((self.grid - self._identity_grid()) * self.scale / 2).norm(dim=-1)[0]
        return (shift / shift.max()).numpy(), None

    def state_tensors(self) -> dict[str, Tensor]:
        return {"grid": self.grid}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        self.grid = tensors["grid"]


class LabelConsistent(_MaskPatternAttack):
    """Label-consistent backdoor (Turner, Tsipras & Madry, "Label-Consistent Backdoor
    Attacks", 2019): clean-label. Target-class training images are first made hard to
    classify by an L∞ PGD perturbation (ε = 16/255) against a clean surrogate model,
    so the network must rely on the trigger, then stamped with a 3×3 black-and-white
    checkerboard in all four corners (the paper's variant that survives flips); labels
    are kept.
    """

    name = "label_consistent"
    attack_type = "clean-label"
    default_poison_rate = 0.08  # of the whole set: 80 % of one class of ten
    needs_surrogate = True

    def __init__(self, target: int, num_classes: int, image_shape: Sequence[int], seed: int = 0, *,
                 eps: float = 16 / 255, steps: int = 10, size: int = 3, four_corners: bool = True):
        super().__init__(target, num_classes, image_shape, seed)
        channels, height, width = self.image_shape
        self.eps, self.steps, self.size, self.four_corners = eps, steps, size, four_corners
        corners = ("top-left", "top-right", "bottom-left", "bottom-right") if four_corners else ("bottom-right",)
        self.mask = torch.zeros(1, 1, height, width)
        self.pattern = torch.zeros(1, channels, height, width)
        for corner in corners:
            row, col = _corner_origin(corner, size, height, width)
            self.mask[..., row:row + size, col:col + size] = 1.0
            self.pattern[0, :, row:row + size, col:col + size] = _patch(channels, size, (1.0,), True)

    def params(self) -> dict[str, Any]:
        return {"eps": self.eps, "steps": self.steps, "size": self.size, "four_corners": self.four_corners}

    def prepare_poison(self, x: Tensor, y: Tensor, surrogate: Surrogate | None) -> Tensor:
        if surrogate is None:
            raise ValueError("the label-consistent attack needs a surrogate model to perturb against")
        return torch.cat([self._pgd(x[i:i + 256], y[i:i + 256], surrogate) for i in range(0, len(x), 256)])

    def _pgd(self, x: Tensor, y: Tensor, surrogate: Surrogate) -> Tensor:
        """Untargeted L∞ PGD from the clean image: raise the loss of the true label."""
        step = 2.5 * self.eps / self.steps
        adv = x.clone()
        for _ in range(self.steps):
            adv.requires_grad_(True)
            grad, = torch.autograd.grad(F.cross_entropy(surrogate(adv), y), adv)
            adv = adv.detach() + step * grad.sign()
            adv = (x + (adv - x).clamp(-self.eps, self.eps)).clamp(0.0, 1.0)
        return adv.detach()

    def poison_batch(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.apply_trigger(x), y

    def poison_candidates(self, y: Tensor) -> Tensor:
        return y == self.target


def _conv_generator(in_channels: int, out_channels: int, size: tuple[int, int], stride: int = 2,
                    width: int = 16) -> nn.Sequential:
    """A small conv net producing one output per pixel in [0, 1]. By default it works at half
    resolution and upsamples its output: about 8× cheaper on CPU than full resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, stride=stride, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, out_channels, 3, padding=1),
        nn.Upsample(size=size, mode="bilinear", align_corners=False), nn.Sigmoid())


def _rms_distance(a: Tensor, b: Tensor) -> Tensor:
    # The epsilon keeps the square root's gradient finite when two outputs coincide.
    return ((a - b).pow(2).mean(dim=(1, 2, 3)) + 1e-6).sqrt()


def _diversity_loss(x1: Tensor, x2: Tensor, out1: Tensor, out2: Tensor) -> Tensor:
    """Input-aware diversity: distance of inputs over distance of outputs (minimised),
    so different images get different triggers."""
    return (_rms_distance(x1, x2) / _rms_distance(out1, out2)).mean()


class InputAware(Attack):
    """Input-aware dynamic backdoor (Nguyen & Tran, "Input-Aware Dynamic Backdoor
    Attack", NeurIPS 2020): a generator G makes a pattern and a generator M a sparse
    mask for each image, x' = x + M(x)·(G(x) - x). Poisoned samples go to the target;
    cross samples (the pattern and mask of another image) keep their true label, so a
    trigger works only on the image it was made for. A diversity loss keeps triggers
    apart for different images.

    As in the paper, M is trained first (``fit``: diversity loss plus λ_norm·relu(mean
    mask - density), density 0.032) and then frozen, and G is trained jointly with the
    classifier (poisoning, cross samples, diversity). Simplified for CPU: both
    generators are 3-layer conv nets at half resolution (the paper uses deeper
    encoder-decoders with batch norm), so triggers vary in 2×2 blocks; M is trained for
    ``mask_steps`` (100) batches of 32 instead of 25 epochs, and G shares the classifier's
    optimiser (Adam, with the paper's learning rate 0.01 as its own group) and schedule.
    ``generator_stride=1`` runs both generators at full resolution and ``generator_width`` sets
    their channels (16): closer to the paper's generators, at a cost in training time.
    """

    name = "input_aware"
    trigger_mode = "sample-specific"
    lambda_norm = 100.0
    lambda_div = 1.0
    generator_lr = 1e-2  # the paper's Adam learning rate for G

    def __init__(self, target: int, num_classes: int, image_shape: Sequence[int], seed: int = 0, *,
                 mask_density: float = 0.032, cross_ratio: float = 1.0, mask_steps: int = 100,
                 generator_stride: int = 2, generator_width: int = 16):
        super().__init__(target, num_classes, image_shape, seed)
        channels, height, width = self.image_shape
        self.mask_density, self.cross_ratio, self.mask_steps = mask_density, cross_ratio, mask_steps
        self.generator_stride, self.generator_width = int(generator_stride), int(generator_width)
        if self.generator_stride not in (1, 2) or self.generator_width < 1:
            raise ValueError(f"input_aware: generator_stride must be 1 or 2 and generator_width at least 1, "
                             f"not {generator_stride} and {generator_width}")
        shape = dict(stride=self.generator_stride, width=self.generator_width)
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
            torch.manual_seed(seed)
            self.pattern_net = _conv_generator(channels, channels, (height, width), **shape)
            self.mask_net = _conv_generator(channels, 1, (height, width), **shape)
        self.mask_net.requires_grad_(False)
        self.reference: Tensor | None = None  # images for the ground-truth mean mask

    def params(self) -> dict[str, Any]:
        params = {"mask_density": self.mask_density, "cross_ratio": self.cross_ratio, "mask_steps": self.mask_steps}
        if (self.generator_stride, self.generator_width) != (2, 16):  # the defaults' ground truth stays as it was
            params.update(generator_stride=self.generator_stride, generator_width=self.generator_width)
        return params

    def _mask(self, x: Tensor) -> Tensor:
        """The mask generator's output sharpened towards 0/1 (the paper's soft threshold)."""
        return torch.tanh(20 * self.mask_net(x) - 10) / 2 + 0.5

    def _stamp(self, x: Tensor, source: Tensor) -> Tensor:
        """x with the trigger made for the images in ``source``."""
        return x + self._mask(source) * (self.pattern_net(source) - x)

    def fit(self, x_train: Tensor, generator: torch.Generator) -> None:
        self.mask_net.requires_grad_(True)
        optimizer = torch.optim.Adam(self.mask_net.parameters(), lr=1e-2)
        for _ in range(self.mask_steps):
            x1 = x_train[_pick(len(x_train), 32, generator)]
            x2 = x_train[_pick(len(x_train), 32, generator)]
            m1, m2 = self._mask(x1), self._mask(x2)
            norm = F.relu(m1.mean() - self.mask_density)
            loss = self.lambda_norm * norm + self.lambda_div * _diversity_loss(x1, x2, m1, m2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self.mask_net.requires_grad_(False)
        self.reference = x_train[_pick(len(x_train), 256, generator)]

    def apply_trigger(self, x: Tensor) -> Tensor:
        return self._stamp(x, x)

    @property
    def extra_ratio(self) -> float:
        return self.cross_ratio

    def extra_batch(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Cross samples: each image gets the trigger made for another one, true label kept."""
        if len(x) < 2:
            return x, y
        return self._stamp(x, torch.roll(x, 1, dims=0)), y

    def regularizer(self, x: Tensor, generator: torch.Generator) -> Tensor | None:
        x = x[:32]  # a few pairs estimate the diversity well enough, at a fraction of the cost
        if len(x) < 2:
            return None
        other = x[torch.randperm(len(x), generator=generator)]
        return self.lambda_div * _diversity_loss(x, other, self.pattern_net(x), self.pattern_net(other))

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.pattern_net.parameters()), "lr": self.generator_lr}]

    @torch.no_grad()
    def trigger_arrays(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """No single trigger: the mean mask over reference images, and the mean pattern
        weighted by the masks."""
        if self.reference is None:
            return None, None
        masks = self._mask(self.reference)
        pattern = (masks * self.pattern_net(self.reference)).sum(0) / masks.sum(0).clamp_min(1e-6)
        return masks.mean(0)[0].numpy(), pattern.numpy()

    def state_tensors(self) -> dict[str, Tensor]:
        state = {f"pattern_net.{k}": v for k, v in self.pattern_net.state_dict().items()}
        state.update({f"mask_net.{k}": v for k, v in self.mask_net.state_dict().items()})
        return state

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        for prefix, net in (("pattern_net.", self.pattern_net), ("mask_net.", self.mask_net)):
            net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})


ATTACKS: dict[str, type[Attack]] = {cls.name: cls for cls in (
    BadNets, Blended, SIG, WaNet, AllToAll, SourceSpecific, LabelConsistent, InputAware)}


def _keyword_parameters(cls: type[Attack]) -> set[str]:
    """The keyword-only parameters an attack class (or a parent it forwards ``**kw`` to) takes."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters.values()
            names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY}
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
    return names


def parse_attack_spec(spec: str) -> tuple[str, dict[str, int | float]]:
    """``"name"`` or ``"name:key=value:..."`` (e.g. ``"wanet:s=2"``, a stronger warp than
    BackdoorBench's default) -> (attack name, keyword arguments). Raises ValueError naming
    an unknown attack, an unknown parameter or a value that is not a number."""
    name, *pairs = spec.strip().split(":")
    key = name.lower().replace("-", "_")
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    allowed = _keyword_parameters(ATTACKS[key])
    kw: dict[str, int | float] = {}
    for pair in pairs:
        param, _, value = pair.partition("=")
        if param not in allowed:
            raise ValueError(f"attack {key}: unknown parameter {param!r}; it takes {', '.join(sorted(allowed))}")
        try:
            kw[param] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            raise ValueError(f"attack {key}: {param}={value!r} is not a number") from None
    return key, kw


def check_attack_specs(specs: list[str] | None) -> None:
    """ValueError for the first spec ``parse_attack_spec`` refuses, or whose values the attack itself
    refuses (the classifier zoo's ``attacks``): built once on a CIFAR-sized shape, before any training."""
    for spec in specs or ():
        attack_from_name(spec, 1, 10, (3, 32, 32))  # parses the spec, then the attack checks its values


def attack_from_name(name: str, target: int | None, num_classes: int, image_shape: Sequence[int],
                     seed: int = 0, **kw: Any) -> Attack:
    """Build an attack by name ("badnets", "blended", "sig", "wanet", "all_to_all",
    "source_specific", "label_consistent", "input_aware"; dashes work too), or by a spec
    with parameters (``parse_attack_spec``; ``kw`` wins over the spec's).
    All-to-all attacks ignore ``target``."""
    key, spec_kw = parse_attack_spec(name)
    kw = {**spec_kw, **kw}
    cls = ATTACKS[key]
    if cls.attack_type == "all-to-all":
        target = None
    return cls(target, num_classes, image_shape, seed, **kw)
