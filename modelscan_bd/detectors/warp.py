"""Warp-trigger inversion: a smooth displacement field for every label, and its precision.

WaNet (Nguyen & Tran, "WaNet - Imperceptible Warping-based Backdoor Attack", ICLR 2021)
poisons with a fixed, smooth warp: a k × k grid of random offsets, upsampled bicubically
to the image size and added to the identity sampling grid. Nothing is painted on the image,
so Neural Cleanse's mask-and-pattern trigger and the signal detector's additive signal cannot
express it (the CIFAR-10 WaNet pilot: Neural Cleanse AUROC 0.24).

Here the trigger is inverted in the attack's own family, as Neural Cleanse does for patches:
for every label, a k × k grid of offsets (each bounded to ± ``max_shift`` pixels through
tanh), upsampled the same way and applied with ``grid_sample``, is optimised so that clean
images of other labels go to that label. All K fields share one batch.

Success alone separates poorly: a clean CIFAR-10 model has a natural "sink" label that a
2-pixel warp reaches for 30-55 % of images. What separates is the field's precision. WaNet's
noise mode trains the model to keep the true label under the field plus sub-pixel random
jitter, so its trigger is a precise key; a clean model's adversarial warp is a natural feature
that survives the same jitter. The statistic, per label, is the **fragility**: held-out success
of the exact field minus its success with WaNet's jitter (uniform, up to ``jitter`` pixels per
pixel) added. On the pilot's tuning models: clean -0.02 to 0.07, WaNet 0.65 to 0.73. A warp
trigger learned without the noise mode fires under any warp instead, and shows as a success
far above the natural sink's (the detector's own flag, ``success_threshold``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..findings import Artifact, Finding
from .base import ScanContext
from .per_label import PerLabelDetector, draw_per_label, frozen, other_label_pools

@dataclass(frozen=True)
class WarpSettings:
    steps: int
    images_per_step: int  # over all K fields; at least MIN_PER_FIELD each
    lr: float = 0.1
    grid: int = 4  # k: WaNet's default control grid
    max_shift: float = 2.0  # pixels, per component, at any control point
    jitter: float = 0.5  # pixels: WaNet's noise mode adds uniform noise of +-1/size in grid units
    jitter_draws: int = 4


MIN_PER_FIELD = 4
SETTINGS = {
    "fast": WarpSettings(steps=60, images_per_step=240),
    "standard": WarpSettings(steps=100, images_per_step=320),
    "thorough": WarpSettings(steps=200, images_per_step=480),
}
# Used when the calibration has no ``warp`` block; read off the pilot's tuning models (see its notes).
DEFAULT_FRAGILITY, DEFAULT_SUCCESS = 0.3, 0.9


def identity_grid(height: int, width: int) -> torch.Tensor:
    """(1, H, W, 2) sampling grid that leaves an image unchanged (x, y last, align_corners=True)."""
    rows, cols = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    return torch.stack((cols, rows), dim=-1)[None]


def displacement(params: torch.Tensor, height: int, width: int, max_shift: float) -> torch.Tensor:
    """Control offsets (K, 2, k, k) -> sampling-grid offsets (K, H, W, 2), each control point
    within ± max_shift pixels (tanh), smooth in between (bicubic, as WaNet's field)."""
    shift = max_shift * torch.tanh(params)
    field = F.interpolate(shift, size=(height, width), mode="bicubic", align_corners=True)
    # pixels -> grid units: with align_corners=True the grid's 2 spans (size - 1) pixels
    per_pixel = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
    return field.permute(0, 2, 3, 1) * per_pixel


def warp(images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Resample ``images`` (N, C, H, W) through identity + ``offsets`` ((N or 1), H, W, 2)."""
    n, _, h, w = images.shape
    grid = (identity_grid(h, w) + offsets).clamp(-1, 1).expand(n, -1, -1, -1)
    return F.grid_sample(images, grid, align_corners=True)


def invert_warps(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                 settings: WarpSettings, generator: torch.Generator) -> torch.Tensor:
    """One bounded smooth warp per label, optimised towards that label on ``images``.
    Returns the control parameters (K, 2, k, k); ``displacement`` turns them into offsets."""
    _, c, h, w = images.shape
    k = num_classes
    per = max(MIN_PER_FIELD, settings.images_per_step // k)
    # a small random start: at exactly zero every label's field would begin at the same point
    params = (0.01 * torch.randn(k, 2, settings.grid, settings.grid, generator=generator)).requires_grad_(True)
    opt = torch.optim.Adam([params], lr=settings.lr)
    pools = other_label_pools(labels, k)
    targets = torch.arange(k).repeat_interleave(per)
    with frozen(model):
        for _ in range(settings.steps):
            offsets = displacement(params, h, w, settings.max_shift).repeat_interleave(per, dim=0)
            batch = warp(images[draw_per_label(pools, per, generator)].reshape(-1, c, h, w), offsets)
            loss = F.cross_entropy(model(batch), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return params.detach()


@torch.no_grad()
def warp_success(model: torch.nn.Module, params: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                 max_shift: float, jitter: float = 0.0, draws: int = 1,
                 generator: torch.Generator | None = None) -> list[float]:
    """Per label: the share of held-out images of other labels its warp sends there; with
    ``jitter`` (pixels), averaged over ``draws`` fields plus per-pixel uniform noise."""
    model.eval()
    _, _, h, w = images.shape
    offsets = displacement(params, h, w, max_shift)
    per_pixel = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    rates = []
    for t in range(len(params)):
        keep = labels != t
        if not keep.any():
            rates.append(0.0)
            continue
        x, hits = images[keep], 0.0
        for _ in range(draws if jitter else 1):
            field = offsets[t:t + 1]
            if jitter:
                field = field + (torch.rand(len(x), h, w, 2, generator=generator) * 2 - 1) * jitter * per_pixel
            hits += float((model(warp(x, field)).argmax(1) == t).float().mean())
        rates.append(hits / (draws if jitter else 1))
    return rates


def warp_found(fragility: float | None, holdout_success: float | None, cal: dict) -> bool:
    """Whether a recovered warp counts as a trigger (the detector's failed finding): a precise
    key (fragile under jitter), or a warp that sends nearly every image to one label."""
    thr_fragility, thr_success = thresholds(cal)
    return (fragility or 0.0) >= thr_fragility or (holdout_success or 0.0) >= thr_success


def thresholds(cal: dict) -> tuple[float, float]:
    """(fragility, held-out success) that flag a recovered warp, from the calibration's ``warp`` block."""
    return (float(cal.get("fragility_threshold", DEFAULT_FRAGILITY)),
            float(cal.get("success_threshold", DEFAULT_SUCCESS)))


class WarpTriggerDetector(PerLabelDetector):
    id = "warp-trigger"
    version = "1"
    rule_id = "MSBD-C005"
    title = "Warp-trigger inversion over every label (WaNet-style smooth warps and their precision)"
    order = 16

    def run(self, target, context: ScanContext) -> list[Finding]:
        skipped = self.too_little_clean(context)
        if skipped:
            return skipped
        clean = context.clean
        k = int(target.num_classes)
        settings = SETTINGS[context.budget]
        context.progress(f"warp inversion: {k} fields ({settings.grid}x{settings.grid} control points)")
        params = invert_warps(target.model, clean.exposure_images, clean.exposure_labels, k, settings,
                              context.generator(salt=16))
        rates = warp_success(target.model, params, clean.holdout_images, clean.holdout_labels, settings.max_shift)
        jittered = warp_success(target.model, params, clean.holdout_images, clean.holdout_labels, settings.max_shift,
                                settings.jitter, settings.jitter_draws, context.generator(salt=17))
        fragility = [r - j for r, j in zip(rates, jittered)]
        best = max(range(k), key=rates.__getitem__)
        fragile = max(range(k), key=fragility.__getitem__)
        cal = context.results.get("calibration", {}).get("warp", {})
        thr_fragility, thr_success = thresholds(cal)
        flagged = warp_found(fragility[fragile], rates[best], cal)
        # the precise key names the target; a warp that fires anyhow names its own label
        label = fragile if fragility[fragile] >= thr_fragility else best
        context.results[self.id] = {"label": label, "holdout_success": rates[best], "fragility": fragility[fragile],
                                    "flagged": flagged}
        evidence = {"label": label, "best_label": best, "holdout_success": round(rates[best], 4),
                    "fragile_label": fragile, "fragility": round(fragility[fragile], 4),
                    "max_shift_px": settings.max_shift, "jitter_px": settings.jitter,
                    "control_grid": settings.grid, "success_by_label": [round(r, 4) for r in rates],
                    "jittered_success_by_label": [round(r, 4) for r in jittered], "steps": settings.steps,
                    "fragility_threshold": thr_fragility, "success_threshold": thr_success}
        name = target.labels[label]
        desc = (f"the best smooth warp (at most {settings.max_shift:g} px per control point) for label {label} "
                f"({name}) sends {rates[label]:.0%} of held-out clean images there, {jittered[label]:.0%} with "
                f"{settings.jitter:g} px of jitter added (fragility {fragility[label]:.2f})")
        artifacts = self._artifacts(target, params[label:label + 1], label, clean, settings.max_shift)
        if flagged:
            return [self.finding("failed", "medium", f"Warp trigger: {desc}.", score=fragility[label],
                                 threshold=thr_fragility, evidence=evidence, artifacts=artifacts,
                                 target_labels=[label])]
        return [self.finding("passed", "info", f"No warp trigger stands out: {desc}.", score=fragility[label],
                             threshold=thr_fragility, evidence=evidence, artifacts=artifacts)]

    @staticmethod
    def _artifacts(target, params: torch.Tensor, label: int, clean, max_shift: float) -> list[Artifact]:
        c, h, w = clean.images.shape[1:]
        offsets = displacement(params, h, w, max_shift)
        eligible = torch.nonzero(clean.holdout_labels != label).flatten()
        example = clean.holdout_images[eligible[0] if len(eligible) else 0]
        applied = warp(example[None], offsets)[0]
        # a chequerboard shows the warp itself: straight lines bend where pixels move
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        board = (((rows // 4) + (cols // 4)) % 2).float().expand(c, h, w)
        with torch.no_grad():
            before, after = (int(target.predict(v[None])[0]) for v in (example, applied))
        return [
            Artifact.from_array("warp", "recovered warp applied to a chequerboard", warp(board[None], offsets)[0]),
            Artifact.from_array("clean", f"held-out clean image (predicted {target.labels[before]})", example),
            Artifact.from_array("warped", f"same image through the warp (predicted {target.labels[after]})", applied),
        ]
