"""Model merging on state dicts: task arithmetic, TIES and DARE, as mergekit configures them.

Our own implementations of the published methods, following the semantics of mergekit's
"generalized task arithmetic" family so that the gate simulates what the user's merge
will do:

* Task arithmetic (Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023):
  task vector tau_i = theta_i - theta_0; merged = theta_0 + lambda * sum_i w_i tau_i.
* TIES-merging (Yadav et al., "Resolving Interference When Merging Models", NeurIPS 2023):
  trim each tau_i to its top-``density`` entries by magnitude, elect a sign per entry
  from the summed (weighted) trimmed vectors, and average only the entries that agree
  with the elected sign (mergekit divides by the summed weights of those entries).
* DARE (Yu et al., "Language Models are Super Mario", ICML 2024): drop each entry of
  tau_i with probability 1 - density and rescale the survivors by 1 / density (the
  paper's rescale; mergekit rescales to keep the L1 norm, equal in expectation).
  ``dare_ties`` adds TIES' sign election; ``dare_linear`` sums as task arithmetic does.

Defaults per method are mergekit's (normalize: ties only; rescale: the dare methods).
Only floating-point tensors are merged; integer buffers (BatchNorm's
num_batches_tracked) keep the base model's values. BatchNorm's running statistics are
never randomly dropped (DARE drops *parameter* deltas; mergekit merges LLMs, which have no
such buffers): a DARE merge gives them its expected merge, because dropping half a running
variance's delta and doubling the rest can make it negative, and the merged model then
returns NaN. (TIES trims them like any tensor; a trim alone cannot make a variance
negative.) A running variance is floored at 0 whatever the method.
Random drops use a seeded generator: the same seed gives the same merge.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

METHODS = ("task_arithmetic", "ties", "dare_ties", "dare_linear")
# method -> (sparsification, sign consensus, default normalize, default rescale)
_SPEC = {
    "task_arithmetic": (None, False, False, False),
    "ties": ("magnitude", True, True, False),
    "dare_ties": ("random", True, False, True),
    "dare_linear": ("random", False, False, True),
}

StateDict = dict[str, Tensor]


@dataclass
class MergeSpec:
    """What mergekit's config says about one merge (see ``gate_config``)."""

    method: str = "task_arithmetic"
    weights: list[float] = field(default_factory=list)
    densities: list[float] = field(default_factory=list)
    normalize: bool | None = None  # None: the method's default
    rescale: bool | None = None
    lam: float = 1.0  # mergekit's "lambda"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unsupported merge method {self.method!r}; choose from {', '.join(METHODS)}")

    def subset(self, keep: list[int]) -> "MergeSpec":
        """The same merge over only the models at ``keep`` (leave-one-out, emit-config)."""
        return MergeSpec(self.method, [self.weights[i] for i in keep], [self.densities[i] for i in keep],
                         self.normalize, self.rescale, self.lam)

    @property
    def stochastic(self) -> bool:
        return _SPEC[self.method][0] == "random"

    @property
    def normalizes(self) -> bool:
        """``normalize`` as the merge applies it (the method's default when unset)."""
        return _SPEC[self.method][2] if self.normalize is None else self.normalize

    @property
    def rescales(self) -> bool:
        """``rescale`` as the merge applies it (the method's default when unset)."""
        return _SPEC[self.method][3] if self.rescale is None else self.rescale

    def expected(self) -> "MergeSpec":
        """The merge that DARE's random drops scatter around (itself for the other methods).

        DARE's drop-and-rescale is unbiased, E[drop(tau) / density] = tau, so a dare_linear
        merge is in expectation the task-arithmetic merge with the same weights (weights
        times density without the rescale). For dare_ties the sign election is not linear;
        TIES without trimming is the same mean-field view. The gate judges this merge, so
        that a verdict does not hang on one random mask.
        """
        if not self.stochastic:
            return self
        weights = [w if self.rescales else w * d for w, d in zip(self.weights, self.densities)]
        if self.method == "dare_linear":
            return MergeSpec("task_arithmetic", weights, [1.0] * len(weights), self.normalize, None, self.lam)
        return MergeSpec("ties", weights, [1.0] * len(weights), self.normalizes, None, self.lam)


def mergeable(tensor: Tensor) -> bool:
    return torch.is_floating_point(tensor)


def running_stat(name: str) -> str | None:
    """Which BatchNorm running statistic a buffer is ("mean" or "var", by torch's names), else None."""
    last = name.rsplit(".", 1)[-1]
    return {"running_mean": "mean", "running_var": "var"}.get(last)


def task_vector(base: StateDict, model: StateDict) -> StateDict:
    """tau = theta - theta_0 over the floating-point tensors."""
    return {k: (model[k].float() - base[k].float()) for k, v in base.items() if mergeable(v)}


def check_compatible(base: StateDict, model: StateDict, name: str = "model") -> None:
    """Raise ValueError naming the first tensor whose name or shape differs from the base."""
    missing = sorted(set(base) - set(model))
    extra = sorted(set(model) - set(base))
    if missing or extra:
        first = (missing + extra)[0]
        raise ValueError(f"{name} does not match the base: {len(missing)} tensors missing, {len(extra)} extra "
                         f"(e.g. {first})")
    for k, v in base.items():
        if tuple(model[k].shape) != tuple(v.shape):
            raise ValueError(f"{name} does not match the base: tensor {k} has shape {tuple(model[k].shape)}, "
                             f"base has {tuple(v.shape)}")


def magnitude_trim(tau: Tensor, density: float) -> Tensor:
    """Keep the ``density`` share of entries with the largest |tau| (TIES' trim step)."""
    if density >= 1:
        return tau.clone()
    k = int(round(density * tau.numel()))
    if k <= 0:
        return torch.zeros_like(tau)
    flat = tau.flatten()
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[flat.abs().topk(k, sorted=False).indices] = True  # exactly k entries, ties broken by topk
    return (flat * keep).view_as(tau)


def random_drop(tau: Tensor, density: float, rescale: bool, generator: torch.Generator) -> Tensor:
    """DARE: keep each entry with probability ``density``; rescale survivors by 1/density."""
    if density >= 1:
        return tau.clone()
    keep = torch.rand(tau.shape, generator=generator) < density
    out = tau * keep
    return out / density if rescale and density > 0 else out


def elect_sign_mask(deltas: Tensor) -> Tensor:
    """TIES sign election over stacked (weighted) deltas [n, ...]: the sign of their sum
    (>= 0 elects +); returns where each delta agrees with the elected sign."""
    elected = torch.where(deltas.sum(0) >= 0, 1.0, -1.0)
    return deltas.sign() == elected


def merge_tensors(base: Tensor, taus: list[Tensor], spec: MergeSpec, generator: torch.Generator) -> Tensor:
    """One tensor of the merged model from the base tensor and the candidates' task vectors."""
    sparsify, consensus, _, _ = _SPEC[spec.method]
    normalize, rescale = spec.normalizes, spec.rescales
    if not taus:
        return base.clone()
    parts = []
    for tau, density in zip(taus, spec.densities):
        if sparsify == "magnitude":
            tau = magnitude_trim(tau, density)
        elif sparsify == "random":
            tau = random_drop(tau, density, rescale, generator)
        parts.append(tau)
    deltas = torch.stack(parts)
    w = torch.tensor(spec.weights, dtype=deltas.dtype).view(-1, *([1] * base.dim()))
    deltas = deltas * w
    if consensus:
        mask = elect_sign_mask(deltas)
        mixed = (deltas * mask).sum(0)
        divisor = (w * mask).sum(0)
        divisor[divisor == 0] = 1
    else:
        mixed = deltas.sum(0)
        divisor = w.sum(0).expand_as(mixed).clone()
        divisor[divisor.abs() < 1e-8] = 1
    if normalize:
        mixed = mixed / divisor
    return (base.float() + spec.lam * mixed).to(base.dtype)


def merge_state_dicts(base: StateDict, models: list[StateDict], spec: MergeSpec, seed: int = 0) -> StateDict:
    """The merged state dict (see the module docstring for the methods)."""
    if len(spec.weights) != len(models) or len(spec.densities) != len(models):
        raise ValueError("one weight and one density per model are needed")
    generator = torch.Generator().manual_seed(seed)
    stats_spec = spec.expected()  # BatchNorm statistics: no random drop
    out: StateDict = {}
    for name in sorted(base):  # sorted: the random drops do not depend on dict order
        tensor = base[name]
        if not mergeable(tensor):
            out[name] = tensor.clone()
            continue
        taus = [m[name].float() - tensor.float() for m in models]
        stat = running_stat(name)
        if stat is None:
            out[name] = merge_tensors(tensor, taus, spec, generator)
            continue
        merged = merge_tensors(tensor, taus, stats_spec, generator)
        out[name] = merged.clamp(min=0) if stat == "var" else merged
    return out


def scaled(base: StateDict, tau: StateDict, lam: float, density: float = 1.0) -> StateDict:
    """theta_0 + lam * trim(tau): the task-vector exposures (amplification, TIES trimming)."""
    out = {k: v.clone() for k, v in base.items()}
    for k, t in tau.items():
        out[k] = (base[k].float() + lam * magnitude_trim(t, density)).to(base[k].dtype)
    return out
