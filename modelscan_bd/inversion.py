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
from statistics import median
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
    source: int | None = None  # draw only images of this label (a source-specific trigger), else any other


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


def _slot_losses(logits: torch.Tensor, y: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image loss and success for a batch of slots: logits (a, n, K), labels (a, n), one target
    per slot (a,): cross-entropy towards a target label, or for ``UNTARGETED`` the margin of the true
    label over the best other (floored at -5). One call per step, not one per slot: with 90 slots a
    Python loop over them cost as much as the model."""
    a, n, k = logits.shape
    t = targets.clamp(min=0)[:, None].expand(a, n)
    targeted = F.cross_entropy(logits.reshape(a * n, k), t.reshape(-1), reduction="none").reshape(a, n)
    pred = logits.argmax(2)
    untargeted = targets == UNTARGETED
    if not untargeted.any():
        return targeted, pred == t
    true = logits.gather(2, y[..., None])[..., 0]
    other = logits.scatter(2, y[..., None], float("-inf")).max(2).values
    away = (true - other).clamp(min=-5.0)
    u = untargeted[:, None]
    return torch.where(u, away, targeted), torch.where(u, pred != y, pred == t)


def _eligible(y: torch.Tensor, slot: Slot) -> torch.Tensor:
    """The images a slot's trigger is optimised and measured on."""
    keep = torch.ones_like(y, dtype=torch.bool) if slot.target == UNTARGETED else y != slot.target
    return keep if slot.source is None else keep & (y == slot.source)


def invert(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, slots: list[Slot],
           settings: InversionSettings, generator: torch.Generator, reference: nn.Module | None = None,
           reference_weight: float = 1.0) -> list[Inverted]:
    """Optimise one trigger per slot on ``images`` (pixel space) through ``model`` (and, if
    given, against ``reference``: see the module docstring) for ``settings.steps`` steps."""
    run = Inversion(model, images, labels, slots, settings, generator, reference, reference_weight)
    run.run(settings.steps)
    return run.results()


class Inversion:
    """The state of one batch of slots under optimisation, so that a caller can look at the
    triggers part-way (``results``), narrow the batch to the slots worth going on with (``keep``)
    and ``run`` again. A slot left out stays as it was when it was dropped. Every slot's images
    are still drawn each step, used or not, so a kept slot sees the draws it would have seen in the
    full batch (and, the model being in eval mode, the same gradients up to float rounding)."""

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, slots: list[Slot],
                 settings: InversionSettings, generator: torch.Generator, reference: nn.Module | None = None,
                 reference_weight: float = 1.0):
        self.model, self.reference, self.reference_weight = model, reference, reference_weight
        self.images, self.labels, self.slots = images, labels, slots
        self.settings, self.generator = settings, generator
        _, c, h, w = images.shape
        k = len(slots)
        # Parameters live in logit space so mask and pattern stay in [0, 1] (NC uses tanh).
        self.mask_logit = torch.full((k, 1, h, w), -2.0).requires_grad_(True)  # start at ~0.12 coverage
        self.pattern_logit = (torch.rand((k, c, h, w), generator=generator) * 2 - 1).requires_grad_(True)
        self.opt = torch.optim.Adam([self.mask_logit, self.pattern_logit], lr=settings.lr, betas=(0.5, 0.9))
        self.cost = torch.full((k,), settings.init_cost)
        self.best_size = torch.full((k,), float("inf"))
        self.best_mask = torch.zeros(k, 1, h, w)
        self.best_pattern = torch.zeros(k, c, h, w)
        self.last_success = torch.zeros(k)
        self.above = torch.zeros(k)
        self.below = torch.zeros(k)
        self.paths: list[list[float]] = [[] for _ in range(k)]
        self.steps_run = [0] * k
        self.pools = [torch.nonzero(_eligible(labels, s)).flatten() for s in slots]
        self.targets = torch.tensor([s.target for s in slots], dtype=torch.long)
        self.active = list(range(k))
        self.dropped: dict[int, Inverted] = {}

    def keep(self, indices: list[int]) -> None:
        """Go on with these slots only; the others are fixed as they are now."""
        final_mask, final_pattern = self._final()
        for i in self.active:
            if i not in indices:
                self.dropped[i] = self._result(i, final_mask, final_pattern)
        self.active = [i for i in self.active if i in indices]

    def run(self, steps: int) -> None:
        model, reference, settings = self.model, self.reference, self.settings
        model.eval()
        params = [p.requires_grad_(False) for p in model.parameters()]
        if reference is not None:
            reference.eval()
            params += [p.requires_grad_(False) for p in reference.parameters()]
        _, c, h, w = self.images.shape
        act = torch.tensor(self.active, dtype=torch.long)
        a, n = len(self.active), settings.images_per_slot
        for _ in range(steps):
            idx = torch.stack([pool[torch.randint(len(pool), (n,), generator=self.generator)]
                               for pool in self.pools])[act]
            x, y = self.images[idx], self.labels[idx]  # (a, n, ...)
            mask = _shaped_mask(self.mask_logit, self.slots)[act]
            pattern = torch.sigmoid(self.pattern_logit)[act]
            xt = (1 - mask[:, None]) * x + (mask * pattern)[:, None]
            logits = model(xt.reshape(a * n, c, h, w)).reshape(a, n, -1)
            size = mask.mean(dim=(1, 2, 3))
            per_image, hits = _slot_losses(logits, y, self.targets[act])
            task, success = per_image.mean(1), hits.float().mean(1).detach()
            if reference is not None:
                ref_logits = reference(xt.reshape(a * n, c, h, w))
                task = task + self.reference_weight * F.cross_entropy(
                    ref_logits, y.reshape(-1), reduction="none").reshape(a, n).mean(1)
            total = (task + self.cost[act] * size).sum()
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            self.opt.step()
            with torch.no_grad():
                self._bookkeep(act, success, size.detach(), mask.detach(), pattern.detach(), task)
        for p in params:
            p.requires_grad_(True)

    def _bookkeep(self, act, success, size, mask, pattern, task) -> None:
        """Best trigger so far, and NC's adaptive cost: tighten the mask while attacks succeed,
        relax it when they fail."""
        s = self.settings
        improved = (success >= s.success) & (size < self.best_size[act])
        self.best_size[act] = torch.where(improved, size, self.best_size[act])
        self.best_mask[act[improved]] = mask[improved]
        self.best_pattern[act[improved]] = pattern[improved]
        self.last_success[act] = success
        self.cost[act], self.above[act], self.below[act] = adapt_cost(
            self.cost[act], self.above[act], self.below[act], success >= s.success, s)
        for i, value in zip(self.active, task.tolist()):
            self.paths[i].append(round(value, 4))
            self.steps_run[i] += 1

    def results(self) -> list[Inverted]:
        """Every slot's trigger: its smallest one that reached the success bar, else where it is now."""
        final_mask, final_pattern = self._final()
        return [self.dropped[i] if i in self.dropped else self._result(i, final_mask, final_pattern)
                for i in range(len(self.slots))]

    def _final(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return _shaped_mask(self.mask_logit, self.slots), torch.sigmoid(self.pattern_logit)

    def _result(self, i: int, final_mask: torch.Tensor, final_pattern: torch.Tensor) -> Inverted:
        reached = bool(torch.isfinite(self.best_size[i]))
        return Inverted(slot=self.slots[i],
                        mask=self.best_mask[i].clone() if reached else final_mask[i],
                        pattern=self.best_pattern[i].clone() if reached else final_pattern[i],
                        size=float(self.best_size[i]) if reached else float(final_mask[i].mean()),
                        reached=reached, batch_success=float(self.last_success[i]),
                        loss_path=self.paths[i][:: max(1, self.steps_run[i] // 50)])


def adapt_cost(cost: torch.Tensor, above: torch.Tensor, below: torch.Tensor, reached: torch.Tensor,
               settings: InversionSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Neural Cleanse's adaptive mask weight, one step for a batch of triggers: after ``patience``
    steps in a row that reached the success bar the weight rises (tighten the mask), after as many
    that did not it falls (relax it). Returns the new weights and above/below-the-bar run lengths."""
    s = settings
    above = torch.where(reached, above + 1, torch.zeros_like(above))
    below = torch.where(reached, torch.zeros_like(below), below + 1)
    up, down = above >= s.patience, below >= s.patience
    cost = torch.where(up, cost * s.cost_up, torch.where(down, cost / s.cost_down, cost))
    above[up], below[down] = 0, 0
    return cost, above, below


def _shaped_mask(mask_logit: torch.Tensor, slots: list[Slot]) -> torch.Tensor:
    """Per-pixel masks for PATCH slots; one value spread over the image for BLEND slots."""
    m = torch.sigmoid(mask_logit)
    blend = torch.tensor([s.shape == BLEND for s in slots])
    if blend.any():
        flat = m.mean(dim=(1, 2, 3), keepdim=True).expand_as(m)
        m = torch.where(blend[:, None, None, None], flat, m)
    return m


def anomaly_index(sizes: list[float]) -> tuple[float, int]:
    """Neural Cleanse's outlier test over per-label trigger sizes (Wang et al., IEEE S&P 2019):
    (median - smallest) / (1.4826 * MAD), only the small side counting; with the smallest label."""
    med = median(sizes)
    mad = 1.4826 * median(abs(s - med) for s in sizes) or 1e-9
    smallest = min(range(len(sizes)), key=lambda k: sizes[k])
    return max(0.0, (med - sizes[smallest]) / mad), smallest


@torch.no_grad()
def success_rate(model: nn.Module, trig: Inverted, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Attack success of a recovered trigger on images it was not optimised on."""
    model.eval()
    keep = _eligible(labels, trig.slot)
    if trig.slot.target == UNTARGETED:
        keep &= model(images).argmax(1) == labels  # flips only count on correctly classified images
    if not keep.any():
        return 0.0
    x, y = images[keep], labels[keep]
    _, hit = _slot_losses(model(trig.apply(x))[None], y[None], torch.tensor([trig.slot.target]))
    return float(hit.float().mean())
