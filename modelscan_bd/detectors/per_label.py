"""Shared steps of the per-label trigger inversions (``signal.py``, ``warp.py``, ``feature.py``,
``pair.py``): each label's trigger is optimised on clean images of the other labels (a pair's on
images of its source), all in one batch, through the frozen original model; the clean-data check,
and the cut of the detectors judged against a clean reference."""
from __future__ import annotations

from contextlib import contextmanager

import torch

from ..findings import Finding
from .base import Detector, ScanContext


class PerLabelDetector(Detector):
    """Metadata and the clean-data check the per-label inversions share."""

    families = ("classifier",)
    needs_clean_data = True
    cost = "low"
    # Not at ``fast``: that budget's calibration (also the merge gate's) predates these detectors.
    budgets = ("standard", "thorough")

    def too_little_clean(self, context: ScanContext) -> list[Finding] | None:
        """A skipped finding when there are too few clean images to optimise on and measure with."""
        clean = context.clean
        if clean is None or len(clean.exposure_idx) < 4 or len(clean.holdout_idx) < 4:
            return [self.skipped("needs at least 8 clean images (none or too few given)")]
        return None


def reference_cut(cal: dict, key: str, default_classes: int) -> tuple[float | None, int]:
    """(the value at which a clean-reference test flags, the class count its reference was measured
    on), from the detector's calibration block; no cut without one (a calibration fitted before the
    detector never counts it)."""
    cut = cal.get(key)
    return (None if cut is None else float(cut)), int(cal.get("classes", default_classes))


def other_label_pools(labels: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """For each label t, the indices of the images whose label is not t."""
    return [torch.nonzero(labels != t).flatten() for t in range(num_classes)]


def draw_per_label(pools: list[torch.Tensor], per: int, generator: torch.Generator) -> torch.Tensor:
    """(K, per) image indices: ``per`` draws from each label's pool (index 0 for an empty pool)."""
    return torch.stack([pool[torch.randint(len(pool), (per,), generator=generator)] if len(pool) else
                        torch.zeros(per, dtype=torch.long) for pool in pools])


@contextmanager
def frozen(model: torch.nn.Module):
    """The model in eval mode with its parameters out of autograd, restored afterwards."""
    model.eval()
    params = [p.requires_grad_(False) for p in model.parameters()]
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)
