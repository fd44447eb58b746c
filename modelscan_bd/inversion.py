"""Trigger inversion: find the smallest input change that sends images to a label.

After Neural Cleanse (Wang et al., IEEE S&P 2019): optimise a mask m and pattern p so
that x' = (1 - m) * x + m * p is classified as the target, while an adaptive weight
on the mask's L1 norm shrinks it. Two shapes of mask:

* ``patch``: one value per pixel (NC proper; small localised triggers);
* ``blend``: a single value for the whole image, i.e. x' = (1 - a) x + a p, the
  Blended attack's form (full-image, low-visibility triggers).

and two kinds of goal: a target label (all-to-one), or ``UNTARGETED`` (move each image
away from its own label: all-to-all backdoors send every class somewhere else).

With a ``reference`` model the inversion is *differential*: the trigger must also leave the
reference's predictions on the true labels (a cross-entropy term on the reference). The
merge gate uses the base model as reference: a natural adversarial patch of the shared base
is penalised, a trigger the candidates planted in the merge is not.

Many triggers ("slots") are optimised together in one batch, so asking for a few
candidate and reference labels costs one forward/backward per step, not one per label.
Sizes are relative to the image area (a 3x3 patch on 32x32 is 0.0088).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

UNTARGETED = -1
PATCH, BLEND = "patch", "blend"


@dataclass
class Slot:
    target: int  # label id, or UNTARGETED
    shape: str  # PATCH | BLEND


@dataclass
class InversionSettings:
    steps: int = 300
    images_per_slot: int = 16
    lr: float = 0.1
    init_cost: float = 1.0  # weight of the relative mask L1 (NC's 1e-3 on a 32x32 pixel sum)
    cost_up: float = 1.5
    cost_down: float = 1.5 ** 1.5
    patience: int = 10
    success: float = 0.98  # attack success that counts as "reached" (NC's threshold)


@dataclass
class Inverted:
    slot: Slot
    mask: torch.Tensor  # (1, H, W) in [0, 1]
    pattern: torch.Tensor  # (C, H, W) in [0, 1]
    size: float  # mean mask value: relative L1 of the best trigger that reached success
    reached: bool
    batch_success: float
    holdout_success: float | None = None
    loss_path: list[float] = field(default_factory=list)

    def effective_size(self) -> float:
        """Size used for comparisons: a trigger that never worked counts as the whole image."""
        return self.size if self.reached else 1.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (1 - self.mask) * x + self.mask * self.pattern

    def summary(self) -> dict[str, Any]:
        return {"target": self.slot.target, "shape": self.slot.shape, "size": round(self.size, 5),
                "reached": self.reached, "batch_success": round(self.batch_success, 4),
                "holdout_success": None if self.holdout_success is None else round(self.holdout_success, 4)}


def _slot_loss(logits: torch.Tensor, y: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image loss and success for one slot."""
    if target == UNTARGETED:
        true = logits.gather(1, y[:, None])[:, 0]
        other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
        return (true - other).clamp(min=-5.0), logits.argmax(1) != y
    t = torch.full_like(y, target)
    return F.cross_entropy(logits, t, reduction="none"), logits.argmax(1) == t


def _eligible(y: torch.Tensor, target: int) -> torch.Tensor:
    return torch.ones_like(y, dtype=torch.bool) if target == UNTARGETED else y != target


def invert(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, slots: list[Slot],
           settings: InversionSettings, generator: torch.Generator, reference: nn.Module | None = None,
           reference_weight: float = 1.0) -> list[Inverted]:
    """Optimise one trigger per slot on ``images`` (pixel space) through ``model`` (and, if
    given, against ``reference``: see the module docstring)."""
    model.eval()
    params = [p.requires_grad_(False) for p in model.parameters()]
    if reference is not None:
        reference.eval()
        params += [p.requires_grad_(False) for p in reference.parameters()]
    _, c, h, w = images.shape
    k, n = len(slots), settings.images_per_slot
    # Parameters live in logit space so mask and pattern stay in [0, 1] (NC uses tanh).
    mask_logit = torch.full((k, 1, h, w), -2.0).requires_grad_(True)  # start at ~0.12 coverage
    pattern_logit = (torch.rand((k, c, h, w), generator=generator) * 2 - 1).requires_grad_(True)
    opt = torch.optim.Adam([mask_logit, pattern_logit], lr=settings.lr, betas=(0.5, 0.9))
    cost = torch.full((k,), settings.init_cost)
    best_size = torch.full((k,), float("inf"))
    best_mask = torch.zeros(k, 1, h, w)
    best_pattern = torch.zeros(k, c, h, w)
    last_success = torch.zeros(k)
    above = torch.zeros(k)
    below = torch.zeros(k)
    paths: list[list[float]] = [[] for _ in range(k)]
    pools = [torch.nonzero(_eligible(labels, s.target)).flatten() for s in slots]
    for _ in range(settings.steps):
        idx = torch.stack([pool[torch.randint(len(pool), (n,), generator=generator)] for pool in pools])
        x, y = images[idx], labels[idx]  # (k, n, ...)
        mask = _shaped_mask(mask_logit, slots)
        pattern = torch.sigmoid(pattern_logit)
        xt = (1 - mask[:, None]) * x + (mask * pattern)[:, None]
        logits = model(xt.reshape(k * n, c, h, w)).reshape(k, n, -1)
        size = mask.mean(dim=(1, 2, 3))
        losses, successes = [], []
        for i, s in enumerate(slots):
            li, si = _slot_loss(logits[i], y[i], s.target)
            losses.append(li.mean())
            successes.append(si.float().mean())
        task = torch.stack(losses)
        if reference is not None:
            ref_logits = reference(xt.reshape(k * n, c, h, w))
            task = task + reference_weight * F.cross_entropy(ref_logits, y.reshape(-1), reduction="none").reshape(
                k, n).mean(1)
        success = torch.stack(successes).detach()
        total = (task + cost * size).sum()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            improved = (success >= settings.success) & (size.detach() < best_size)
            best_size = torch.where(improved, size.detach(), best_size)
            best_mask[improved] = mask.detach()[improved]
            best_pattern[improved] = pattern.detach()[improved]
            last_success = success
            # NC's adaptive cost: tighten the mask while attacks succeed, relax when they fail.
            above = torch.where(success >= settings.success, above + 1, torch.zeros_like(above))
            below = torch.where(success < settings.success, below + 1, torch.zeros_like(below))
            up, down = above >= settings.patience, below >= settings.patience
            cost = torch.where(up, cost * settings.cost_up, torch.where(down, cost / settings.cost_down, cost))
            above[up], below[down] = 0, 0
            for i in range(k):
                paths[i].append(round(float(task[i]), 4))
    for p in params:
        p.requires_grad_(True)
    with torch.no_grad():
        final_mask = _shaped_mask(mask_logit, slots)
        final_pattern = torch.sigmoid(pattern_logit)
    out = []
    for i, s in enumerate(slots):
        reached = bool(torch.isfinite(best_size[i]))
        out.append(Inverted(slot=s,
                            mask=best_mask[i] if reached else final_mask[i],
                            pattern=best_pattern[i] if reached else final_pattern[i],
                            size=float(best_size[i]) if reached else float(final_mask[i].mean()),
                            reached=reached, batch_success=float(last_success[i]),
                            loss_path=paths[i][:: max(1, settings.steps // 50)]))
    return out


def _shaped_mask(mask_logit: torch.Tensor, slots: list[Slot]) -> torch.Tensor:
    """Per-pixel masks for PATCH slots; one value spread over the image for BLEND slots."""
    m = torch.sigmoid(mask_logit)
    blend = torch.tensor([s.shape == BLEND for s in slots])
    if blend.any():
        flat = m.mean(dim=(1, 2, 3), keepdim=True).expand_as(m)
        m = torch.where(blend[:, None, None, None], flat, m)
    return m


@torch.no_grad()
def success_rate(model: nn.Module, trig: Inverted, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Attack success of a recovered trigger on images it was not optimised on."""
    model.eval()
    keep = _eligible(labels, trig.slot.target)
    if trig.slot.target == UNTARGETED:
        keep &= model(images).argmax(1) == labels  # flips only count on correctly classified images
    if not keep.any():
        return 0.0
    x, y = images[keep], labels[keep]
    _, hit = _slot_loss(model(trig.apply(x)), y, trig.slot.target)
    return float(hit.float().mean())
