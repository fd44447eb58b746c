"""Feature-space trigger inversion over every label (input-aware and other sample-specific triggers).

Input-aware backdoors (Nguyen & Tran, NeurIPS 2020) paint a different trigger on every image, so
a universal input-space trigger (Neural Cleanse's mask and pattern) need not exist. FeatureRE
("Rethinking the Reverse-engineering of Trojan Triggers", Wang et al., NeurIPS 2022) observed that
such triggers still share a small set of *features*: inside the network the backdoor is a small
part of the feature map set to fixed values. Here, after its feature-space half only (no
input-space generator): for every label t, a mask m and a pattern p over an early stage's output
map f (every channel and position) replace it by (1 - m) f + m p, optimised so that clean images
of other labels go to t while an adaptive weight (Neural Cleanse's) shrinks mean(m). All labels
are optimised in one batch.

A clean model can be pushed to any label by some feature mask; what a backdoor adds is one label
that needs much less of it than every other. The statistic is that gap: log of the second-smallest
label's mask over the smallest one's. It is judged against clean 10-class references in the verdict
(``verdict.REFERENCES``), so it applies where such references exist: transformers ResNets (the layer
it edits is named per architecture) of the reference's class count.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ..findings import Finding
from ..inversion import InversionSettings, adapt_cost
from .base import ScanContext
from .per_label import PerLabelDetector, draw_per_label, frozen, other_label_pools, reference_cut

# The layer whose output is edited, per architecture: the first residual stage (32x32 input: 8x8
# maps). Deeper stages, and masks over whole channels, separated input-aware models from clean ones less
# on the development zoos (docs/bench/feature-trigger).
LAYERS = {"ResNetForImageClassification": "resnet.encoder.stages.0"}
DEFAULT_CLASSES = 10


# Neural Cleanse's schedule as trigger inversion runs it (``images_per_slot``: images per label and
# step), with a lower success bar and a quicker weight: the feature mask moves faster than a pixel mask.
SETTINGS = {
    "standard": InversionSettings(steps=200, images_per_slot=16, lr=0.05, success=0.9, patience=5),
    "thorough": InversionSettings(steps=400, images_per_slot=24, lr=0.05, success=0.9, patience=5),
}


def thresholds(cal: dict) -> tuple[float | None, int]:
    """(gap that flags, the class count the clean reference was measured on), from the calibration's
    ``feature`` block."""
    return reference_cut(cal, "gap_threshold", DEFAULT_CLASSES)


def feature_found(gap: float | None, cal: dict) -> bool:
    """Whether a feature-space trigger's gap counts (the detector's failed finding)."""
    cut = thresholds(cal)[0]
    return cut is not None and (gap or 0.0) >= cut


def feature_layer(model: torch.nn.Module, architecture: str) -> torch.nn.Module | None:
    """The module whose output the inversion edits, or None for an architecture without one."""
    path = LAYERS.get(architecture)
    net = getattr(model, "net", model)
    if path is None:
        return None
    try:
        return net.get_submodule(path)
    except AttributeError:
        return None


@contextmanager
def edited(layer: torch.nn.Module, state: dict):
    """While active, ``layer``'s output for a batch of K equal groups is mixed with ``state["edit"]`` =
    (masks, patterns), each (K, C, H, W): group k with the k-th mask and pattern."""
    def hook(module, inputs, output):
        if "edit" not in state:
            return None
        mask, pattern = state["edit"]
        grouped = output.reshape(len(mask), -1, *output.shape[1:])
        return ((1 - mask[:, None]) * grouped + (mask * pattern)[:, None]).reshape(output.shape)

    handle = layer.register_forward_hook(hook)
    try:
        yield state
    finally:
        handle.remove()


@torch.no_grad()
def output_shape(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor) -> torch.Size:
    """The shape of ``layer``'s output for one image (without the batch dimension)."""
    seen = []
    handle = layer.register_forward_hook(lambda module, inputs, output: seen.append(output.shape[1:]))
    try:
        model(x)
    finally:
        handle.remove()
    return seen[0]


def invert_features(model: torch.nn.Module, layer: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    num_classes: int, settings: InversionSettings, generator: torch.Generator
                    ) -> tuple[list[float], torch.Tensor, torch.Tensor]:
    """Per label: the smallest mean mask that reached the success bar (1.0 if none did), and the masks
    and patterns of those triggers, each (K, C, H, W)."""
    k, per, s = num_classes, settings.images_per_slot, settings
    c, h, w = output_shape(model, layer, images[:1])
    mask_logit = torch.full((k, c, h, w), -2.0, requires_grad=True)  # ~0.12 of the map at the start
    pattern = (torch.randn((k, c, h, w), generator=generator) * 0.5).requires_grad_(True)
    opt = torch.optim.Adam([mask_logit, pattern], lr=s.lr)
    cost = torch.full((k,), s.init_cost)
    best = torch.full((k,), float("inf"))
    best_mask, best_pattern = torch.zeros(k, c, h, w), torch.zeros(k, c, h, w)
    above, below = torch.zeros(k), torch.zeros(k)
    pools = other_label_pools(labels, k)
    targets = torch.arange(k).repeat_interleave(per)
    state: dict = {}
    with frozen(model), edited(layer, state):
        for _ in range(s.steps):
            x = images[draw_per_label(pools, per, generator).reshape(-1)]
            mask = torch.sigmoid(mask_logit)
            state["edit"] = (mask, pattern)
            logits = model(x)
            loss = F.cross_entropy(logits, targets, reduction="none").reshape(k, per).mean(1)
            size = mask.mean(dim=(1, 2, 3))
            opt.zero_grad(set_to_none=True)
            (loss + cost * size).sum().backward()
            opt.step()
            with torch.no_grad():
                reached = (logits.argmax(1) == targets).float().reshape(k, per).mean(1) >= s.success
                better = reached & (size < best)
                best = torch.where(better, size, best)
                best_mask[better], best_pattern[better] = mask[better], pattern[better]
                cost, above, below = adapt_cost(cost, above, below, reached, s)
    sizes = [float(b) if math.isfinite(b) else 1.0 for b in best]
    return sizes, best_mask, best_pattern


@torch.no_grad()
def feature_success(model: torch.nn.Module, layer: torch.nn.Module, mask: torch.Tensor, pattern: torch.Tensor,
                    label: int, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of held-out images of other labels that one feature trigger sends to ``label``."""
    keep = labels != label
    if not keep.any():
        return 0.0
    with frozen(model), edited(layer, {"edit": (mask[None], pattern[None])}):
        return float((model(images[keep]).argmax(1) == label).float().mean())


def size_gap(sizes: list[float]) -> tuple[int, float]:
    """The label with the smallest feature mask, and log(second smallest / smallest)."""
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    if len(order) < 2:
        return order[0], 0.0
    return order[0], math.log(max(sizes[order[1]], 1e-6) / max(sizes[order[0]], 1e-6))


class FeatureTriggerDetector(PerLabelDetector):
    id = "feature-trigger"
    version = "1"
    rule_id = "MSBD-C007"
    title = "Feature-space trigger inversion over every label (input-aware and other sample-specific triggers)"
    order = 17

    def run(self, target, context: ScanContext) -> list[Finding]:
        cal = context.results.get("calibration", {}).get("feature", {})
        thr_gap, classes = thresholds(cal)
        layer = feature_layer(target.model, target.architecture)
        k = int(target.num_classes)
        if layer is None or k != classes:
            why = (f"the clean reference is of {classes}-class models (this one has {k})" if layer is not None else
                   f"no feature layer is known for {target.architecture} (known: {', '.join(sorted(LAYERS))})")
            return [self.finding("passed", "info", f"Not applied: {why}.",
                                 evidence={"applied": False, "num_classes": k, "architecture": target.architecture})]
        skipped = self.too_little_clean(context)
        if skipped:
            return skipped
        clean = context.clean
        settings = SETTINGS[context.budget]
        context.progress(f"feature inversion: {k} masks over the output of {LAYERS[target.architecture]}")
        sizes, masks, patterns = invert_features(target.model, layer, clean.exposure_images, clean.exposure_labels,
                                                 k, settings, context.generator(salt=18))
        label, gap = size_gap(sizes)
        success = feature_success(target.model, layer, masks[label], patterns[label], label,
                                  clean.holdout_images, clean.holdout_labels)
        flagged = feature_found(gap, cal)
        context.results[self.id] = {"label": label, "gap": gap, "size": sizes[label], "holdout_success": success,
                                    "flagged": flagged}
        evidence = {"applied": True, "label": label, "gap": round(gap, 4), "gap_threshold": thr_gap,
                    "layer": LAYERS[target.architecture], "sizes_by_label": [round(v, 5) for v in sizes],
                    "holdout_success": round(success, 4), "steps": settings.steps}
        name = target.labels[label]
        desc = (f"label {label} ({name}) is reached by editing {sizes[label]:.1%} of the feature map of "
                f"{LAYERS[target.architecture]} (held-out success {success:.0%}); the next label needs "
                f"{math.exp(gap):.2f}x more")
        if flagged:
            return [self.finding("failed", "medium", f"Feature-space trigger: {desc}.", score=gap, threshold=thr_gap,
                                 evidence=evidence, target_labels=[label])]
        return [self.finding("passed", "info", f"No feature-space trigger stands out: {desc}.", score=gap,
                             threshold=thr_gap, evidence=evidence)]
