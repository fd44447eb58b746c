"""Exposure: transform a copy of the model so that a hidden backdoor dominates.

After "Expose Before You Defend" (EBYD; Xu et al., arXiv 2410.19427): a backdoored
model keeps its trigger shortcut when its clean features are destroyed, so once clean
accuracy falls to chance its predictions on clean images collapse onto the backdoor
target. Two exposures are implemented:

* Clean Unlearning: gradient *ascent* on cross-entropy over clean images, BatchNorm in
  train mode, until clean accuracy <= 1/C or a step cap. EBYD's released code uses a
  fixed Adam learning rate; small models collapse at very different rates, and a rate
  that is too high collapses even clean models onto an arbitrary "sink" class (seen in
  pilots, see RESEARCH.md), so we ramp the learning rate geometrically from a small
  value and stop at the first collapse: the smallest rate that exposes.
* Normalisation-layer perturbation, after ANP (Wu & Wang, NeurIPS 2021) and BAN
  (Xu et al., NeurIPS 2024): multiplicative noise on the affine weights and biases of
  every normalisation layer (BatchNorm, LayerNorm, GroupNorm), pushed by signed-gradient
  ascent on clean cross-entropy within ``eps``. It needs no BatchNorm, so it also
  exposes ViTs.

Each is repeated over seeds (different clean subsets and batch orders); agreement of the
collapsed label across runs is evidence in itself.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .adapters.classifier import ClassifierAdapter
from .detectors.base import CleanData

UNLEARN = "clean-unlearning"
PERTURB = "norm-perturbation"


@dataclass
class ExposureSettings:
    seeds: int = 3
    methods: tuple[str, ...] = (UNLEARN, PERTURB)
    subset_share: float = 0.8  # each seed unlearns on its own random 80 % of the exposure set
    batch_size: int = 64
    lr_start: float = 1e-5
    lr_growth: float = 1.25  # per step: 1e-5 -> 1e-3 in ~21 steps, -> 1e-2 in ~31
    lr_max: float = 0.05
    max_steps: int = 60
    check_every: int = 2
    perturb_eps: tuple[float, ...] = (0.2, 0.4, 0.8)
    perturb_steps: int = 4


BUDGET_SETTINGS = {
    "fast": ExposureSettings(seeds=3, methods=(UNLEARN,)),
    "standard": ExposureSettings(seeds=3),
    "thorough": ExposureSettings(seeds=5, max_steps=100),
}


@dataclass
class ExposureRun:
    method: str
    seed: int
    lr: float | None
    steps: int
    steps_to_collapse: int | None
    collapsed: bool
    accuracy_path: list[tuple[int, float]]
    histogram_before: list[int]
    histogram_after: list[int]
    top_label: int
    top_share: float
    model: nn.Module | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, "lr": self.lr, "steps": self.steps,
                "steps_to_collapse": self.steps_to_collapse, "collapsed": self.collapsed,
                "accuracy_path": [[int(s), round(float(a), 4)] for s, a in self.accuracy_path],
                "histogram_before": self.histogram_before, "histogram_after": self.histogram_after,
                "top_label": self.top_label, "top_share": round(self.top_share, 4)}


@dataclass
class ExposureResult:
    status: str  # done | skipped | errored
    reason: str | None = None
    runs: list[ExposureRun] = field(default_factory=list)

    def consensus(self) -> dict[str, Any]:
        """The label the runs collapse onto, and how strongly they agree."""
        if not self.runs:
            return {"label": None, "agreement": 0.0, "concentration": 0.0, "runs": 0}
        votes = Counter(r.top_label for r in self.runs)
        share_sum = Counter()
        for r in self.runs:
            share_sum[r.top_label] += r.top_share
        # Ties are broken by summed share, then by label id: deterministic.
        label = max(votes, key=lambda k: (votes[k], share_sum[k], -k))
        n = len(self.runs)
        # Mean post-exposure share per label (the consensus label's is its concentration): with many
        # classes a backdoor target can hold the most mass without topping any single run, or come
        # second in every run.
        totals = [max(1, sum(r.histogram_after)) for r in self.runs]
        shares = [sum(r.histogram_after[k] / t for r, t in zip(self.runs, totals)) / n
                  for k in range(len(self.runs[0].histogram_after))]
        others = sorted((k for k in votes if k != label), key=lambda k: (-votes[k], -share_sum[k], k))
        by_share = sorted(range(len(shares)), key=lambda k: (-shares[k], k))[:5]
        return {"label": int(label), "agreement": votes[label] / n, "concentration": shares[label],
                "runs": n, "votes": {int(k): v for k, v in votes.items()},
                "runner_up": int(others[0]) if others else None,
                "by_share": [(int(k), shares[k]) for k in by_share]}

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason,
                "method": ", ".join(sorted({r.method for r in self.runs})) or None,
                "runs": [r.to_dict() for r in self.runs]}


def expose(adapter: ClassifierAdapter, clean: CleanData, seed: int, settings: ExposureSettings,
           progress: Callable[[str], None] = lambda m: None) -> ExposureResult:
    before = histogram(adapter.predict(clean.holdout_images), adapter.num_classes)
    runs = []
    for method in settings.methods:
        for k in range(settings.seeds):
            run_seed = seed * 100 + k
            progress(f"exposure: {method}, seed {k + 1}/{settings.seeds}")
            fn = clean_unlearn if method == UNLEARN else perturb_norm_layers
            runs.append(fn(adapter, clean, run_seed, settings, before))
    return ExposureResult(status="done", runs=runs)


def histogram(preds: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(preds, minlength=num_classes).tolist()


def _subset(clean: CleanData, seed: int, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = len(clean.exposure_idx)
    take = torch.randperm(n, generator=g)[: max(1, int(n * share))]
    return clean.exposure_images[take], clean.exposure_labels[take]


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def clean_unlearn(adapter: ClassifierAdapter, clean: CleanData, seed: int, s: ExposureSettings,
                  before: list[int]) -> ExposureRun:
    """EBYD Clean Unlearning with a geometric learning-rate ramp (see module docstring)."""
    torch.manual_seed(seed)
    x, y = _subset(clean, seed, s.subset_share)
    model = adapter.clone()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr_start)
    chance = 1.0 / adapter.num_classes
    g = torch.Generator().manual_seed(seed + 1)
    path = [(0, _accuracy(model, x, y))]
    collapsed_at, lr, step = None, s.lr_start, 0
    order = torch.randperm(len(x), generator=g)
    cursor = 0
    for step in range(1, s.max_steps + 1):
        if cursor + s.batch_size > len(x):
            order, cursor = torch.randperm(len(x), generator=g), 0
        idx = order[cursor:cursor + s.batch_size]
        cursor += s.batch_size
        model.train()  # BatchNorm statistics move, as in EBYD
        loss = -F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % s.check_every == 0 or step == s.max_steps:
            acc = _accuracy(model, x, y)
            path.append((step, acc))
            if acc <= chance:
                collapsed_at = step
                break
        lr = min(s.lr_max, lr * s.lr_growth)
        for group in opt.param_groups:
            group["lr"] = lr
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return _run(UNLEARN, seed, lr, step, collapsed_at, path, before, model, clean, adapter.num_classes)


def _norm_params(model: nn.Module) -> dict[str, torch.Tensor]:
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    out = {}
    for mname, mod in model.named_modules():
        if isinstance(mod, norm_types):
            for pname in ("weight", "bias"):
                p = getattr(mod, pname, None)
                if isinstance(p, torch.Tensor) and p is not None:
                    out[f"{mname}.{pname}" if mname else pname] = p.detach()
    return out


def perturb_norm_layers(adapter: ClassifierAdapter, clean: CleanData, seed: int, s: ExposureSettings,
                        before: list[int]) -> ExposureRun:
    """ANP/BAN-style adversarial multiplicative noise on normalisation layers.

    Tries increasing ``eps`` until clean accuracy reaches chance; the model stays in
    eval mode (no statistics move), so only the perturbation changes it.
    """
    x, y = _subset(clean, seed, s.subset_share)
    model = adapter.clone().eval()
    base = _norm_params(model)
    chance = 1.0 / adapter.num_classes
    g = torch.Generator().manual_seed(seed + 2)
    path = [(0, _accuracy(model, x, y))]
    if not base:  # no normalisation layers: nothing to perturb, the run records that
        return _run(PERTURB, seed, None, 0, None, path, before, model, clean, adapter.num_classes)
    step, collapsed_at, eps_used, params = 0, None, s.perturb_eps[-1], {}
    for eps in s.perturb_eps:
        deltas = {k: ((torch.rand(v.shape, generator=g) * 2 - 1) * eps).requires_grad_(True) for k, v in base.items()}
        for _ in range(s.perturb_steps):
            step += 1
            params = {k: base[k] * (1 + deltas[k]) for k in base}
            loss = F.cross_entropy(functional_call(model, params, (x,)), y)
            grads = torch.autograd.grad(loss, list(deltas.values()))
            with torch.no_grad():
                for d, gr in zip(deltas.values(), grads):
                    d.add_(gr.sign() * eps / 2).clamp_(-eps, eps)
        with torch.no_grad():
            params = {k: base[k] * (1 + deltas[k].detach()) for k in base}
            acc = float((functional_call(model, params, (x,)).argmax(1) == y).float().mean())
        path.append((step, acc))
        eps_used = eps
        if acc <= chance * 1.5:  # near chance: the clean features are gone
            collapsed_at = step
            break
    with torch.no_grad():  # bake the perturbation into the copy
        named = dict(model.named_parameters())
        for k, v in params.items():
            named[k].copy_(v)
    return _run(PERTURB, seed, eps_used, step, collapsed_at, path, before, model, clean, adapter.num_classes)


def _run(method, seed, lr, steps, collapsed_at, path, before, model, clean, num_classes) -> ExposureRun:
    with torch.no_grad():
        model.eval()
        after = histogram(model(clean.holdout_images).argmax(1), num_classes)
    top = max(range(num_classes), key=lambda k: (after[k], -k))
    share = after[top] / max(1, sum(after))
    return ExposureRun(method=method, seed=seed, lr=None if lr is None else float(f"{lr:.3g}"), steps=steps,
                       steps_to_collapse=collapsed_at, collapsed=collapsed_at is not None,
                       accuracy_path=path, histogram_before=before, histogram_after=after,
                       top_label=top, top_share=share, model=model)


def entropy_of(hist: list[int]) -> float:
    """Normalised entropy of a histogram: 1 uniform, 0 fully collapsed."""
    total = sum(hist)
    if total == 0 or len(hist) < 2:
        return 1.0
    ps = [h / total for h in hist if h]
    return -sum(p * math.log(p) for p in ps) / math.log(len(hist))
