"""Signal-trigger inversion: a one-dimensional additive signal for every label.

SIG (Barni, Kallas & Tondi, ICIP 2019) and its relatives poison with a faint signal added
to the whole image - a horizontal sinusoid or a ramp, the same in every row and channel.
Neural Cleanse's mask-and-pattern trigger cannot express such a signal at a small size,
and exposure often collapses SIG models onto another label, so the patch/blend trigger
recovery (which inverts only candidate labels) misses them.

Here, for every label and for both orientations, we optimise an additive signal
δ(j) (a function of the column only: constant down the image and across channels) or
δ(i) (of the row only), bounded by an L∞ amplitude below the attack's, so that clean
images of other labels go to that label. A clean model's universal perturbations of this
restricted form move only a fraction of images to any one label; a model that learned a
signal trigger gives one label a success far above every other label's. The statistic is
that gap, measured on held-out clean images through the original model.

All 2 × K signals are optimised in one batch, so the cost is one forward/backward per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..findings import Artifact, Finding
from .base import ScanContext
from .per_label import PerLabelDetector, draw_per_label, frozen, other_label_pools

# Below BackdoorBench's SIG amplitude (Δ = 40/255 ≈ 0.157): a learned signal still fires,
# while what a clean model's universal perturbations reach stays small.
AMPLITUDE = 0.1
AXES = ("columns", "rows")  # columns: δ varies along the width (SIG's horizontal sinusoid)


@dataclass(frozen=True)
class SignalSettings:
    steps: int
    images_per_step: int  # over all 2 × K signals; at least MIN_PER_SIGNAL each
    lr: float = 0.01


MIN_PER_SIGNAL = 4
SETTINGS = {
    "fast": SignalSettings(steps=60, images_per_step=240),
    "standard": SignalSettings(steps=100, images_per_step=320),
    "thorough": SignalSettings(steps=200, images_per_step=480),
}


def thresholds(cal: dict) -> tuple[float, float]:
    """(gap, held-out success) a recovered signal must reach, from the calibration's ``signal`` block."""
    return float(cal.get("gap_threshold", 0.3)), float(cal.get("success_threshold", 0.8))


def signal_found(gap: float | None, holdout_success: float | None, cal: dict) -> bool:
    """Whether a recovered signal counts as a trigger (the detector's failed finding)."""
    thr_gap, thr_success = thresholds(cal)
    return (gap or 0.0) >= thr_gap and (holdout_success or 0.0) >= thr_success


def signal_works(holdout_success: float | None, cal: dict) -> bool:
    """Whether a recovered signal sends enough held-out images to its label, whatever its gap: then
    its label is the target a scan names when no trigger is found (``scan._suspected_targets``)."""
    return (holdout_success or 0.0) >= thresholds(cal)[1]


def invert_signals(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                   settings: SignalSettings, generator: torch.Generator,
                   amplitude: float = AMPLITUDE) -> dict[str, torch.Tensor]:
    """One bounded 1-D signal per (axis, label), optimised towards that label on ``images``.
    Returns {axis: (K, 1, H or 1, W or 1) signals}, each within ±amplitude."""
    _, c, h, w = images.shape
    k = num_classes
    per = max(MIN_PER_SIGNAL, settings.images_per_step // (2 * k))
    params = {"columns": torch.zeros(k, 1, 1, w, requires_grad=True),
              "rows": torch.zeros(k, 1, h, 1, requires_grad=True)}
    opt = torch.optim.Adam(list(params.values()), lr=settings.lr)
    pools = other_label_pools(labels, k)
    targets = torch.arange(k).repeat_interleave(per).repeat(2)
    with frozen(model):
        for _ in range(settings.steps):
            # every label gets its own images (never of that label), the two axes share them
            x = images[draw_per_label(pools, per, generator)]  # (k, per, c, h, w)
            batch = torch.cat([(x + params[a].clamp(-amplitude, amplitude)[:, None]).clamp(0, 1) for a in AXES])
            loss = F.cross_entropy(model(batch.reshape(-1, c, h, w)), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {a: params[a].detach().clamp(-amplitude, amplitude) for a in AXES}


@torch.no_grad()
def signal_success(model: torch.nn.Module, signals: dict[str, torch.Tensor], images: torch.Tensor,
                   labels: torch.Tensor) -> dict[str, list[float]]:
    """Per axis and label: the share of held-out images of other labels the signal sends there."""
    model.eval()
    out = {}
    for axis, deltas in signals.items():
        rates = []
        for t, delta in enumerate(deltas):
            keep = labels != t
            if not keep.any():
                rates.append(0.0)
                continue
            pred = model((images[keep] + delta).clamp(0, 1)).argmax(1)
            rates.append(float((pred == t).float().mean()))
        out[axis] = rates
    return out


class SignalTriggerDetector(PerLabelDetector):
    id = "signal-trigger"
    version = "1"
    rule_id = "MSBD-C004"
    title = "Signal-trigger inversion over every label (SIG-style additive signals)"
    order = 15

    def run(self, target, context: ScanContext) -> list[Finding]:
        skipped = self.too_little_clean(context)
        if skipped:
            return skipped
        clean = context.clean
        k = int(target.num_classes)
        settings = SETTINGS[context.budget]
        context.progress(f"signal inversion: {2 * k} signals ({k} labels x {len(AXES)} orientations)")
        signals = invert_signals(target.model, clean.exposure_images, clean.exposure_labels, k, settings,
                                 context.generator(salt=15))
        rates = signal_success(target.model, signals, clean.holdout_images, clean.holdout_labels)
        axis, label = max(((a, t) for a in AXES for t in range(k)), key=lambda at: rates[at[0]][at[1]])
        success = rates[axis][label]
        runner_up = max((rates[a][t] for a in AXES for t in range(k) if t != label), default=0.0)
        gap = success - runner_up
        cal = context.results.get("calibration", {}).get("signal", {})
        thr_gap, thr_success = thresholds(cal)
        flagged = signal_found(gap, success, cal)
        context.results[self.id] = {"label": label, "axis": axis, "holdout_success": success, "gap": gap,
                                    "flagged": flagged, "works": signal_works(success, cal)}
        evidence = {"label": label, "axis": axis, "holdout_success": round(success, 4), "gap": round(gap, 4),
                    "runner_up_success": round(runner_up, 4), "amplitude": AMPLITUDE,
                    "success_by_label": {a: [round(r, 4) for r in rates[a]] for a in AXES},
                    "steps": settings.steps, "gap_threshold": thr_gap, "success_threshold": thr_success}
        name = target.labels[label]
        desc = (f"a signal along the {axis} (amplitude ≤ {AMPLITUDE:g}) sends {success:.0%} of held-out clean "
                f"images to label {label} ({name}); the best other label reaches {runner_up:.0%}")
        artifacts = self._artifacts(target, signals[axis][label], label, clean)
        if flagged:
            return [self.finding("failed", "medium", f"Signal trigger: {desc}.", score=gap, threshold=thr_gap,
                                 evidence=evidence, artifacts=artifacts, target_labels=[label])]
        return [self.finding("passed", "info", f"No signal trigger stands out: {desc}.", score=gap,
                             threshold=thr_gap, evidence=evidence, artifacts=artifacts)]

    @staticmethod
    def _artifacts(target, delta: torch.Tensor, label: int, clean) -> list[Artifact]:
        c, h, w = clean.images.shape[1:]
        shown = (delta.expand(c, h, w) / (2 * AMPLITUDE) + 0.5)  # ±amplitude -> [0, 1]
        eligible = torch.nonzero(clean.holdout_labels != label).flatten()
        example = clean.holdout_images[eligible[0] if len(eligible) else 0]
        applied = (example + delta).clamp(0, 1)
        with torch.no_grad():
            before, after = (int(target.predict(v[None])[0]) for v in (example, applied))
        return [
            Artifact.from_array("signal", f"recovered signal (grey = 0, contrast stretched to ±{AMPLITUDE:g})", shown),
            Artifact.from_array("clean", f"held-out clean image (predicted {target.labels[before]})", example),
            Artifact.from_array("signalled", f"same image plus the signal (predicted {target.labels[after]})",
                                applied),
        ]
