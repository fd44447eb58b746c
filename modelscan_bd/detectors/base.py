"""The detector plugin contract.

A detector is a class with its metadata as class attributes (garak-style) and a
``run(target, context)`` that returns findings. Detectors are discovered from the
``modelscan_bd.detectors`` entry-point group, so third parties can ship their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch

from ..findings import Finding

BUDGETS = ("fast", "standard", "thorough")
COSTS = ("low", "medium", "high")


@dataclass
class CleanData:
    """Clean reference images in pixel space ([0, 1], NCHW, at the model's input size).

    ``labels`` are in the model's label space: either the dataset's own labels (when
    they match) or the original model's predictions (``label_source`` says which).
    ``exposure`` and ``holdout`` are disjoint index sets: exposure trains on the first,
    detectors measure on the second.
    """

    images: torch.Tensor
    labels: torch.Tensor
    label_source: str
    source: str
    exposure_idx: torch.Tensor
    holdout_idx: torch.Tensor

    @property
    def exposure_images(self) -> torch.Tensor:
        return self.images[self.exposure_idx]

    @property
    def exposure_labels(self) -> torch.Tensor:
        return self.labels[self.exposure_idx]

    @property
    def holdout_images(self) -> torch.Tensor:
        return self.images[self.holdout_idx]

    @property
    def holdout_labels(self) -> torch.Tensor:
        return self.labels[self.holdout_idx]

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "count": int(len(self.images)),
                "exposure_count": int(len(self.exposure_idx)), "holdout_count": int(len(self.holdout_idx)),
                "label_source": self.label_source}


@dataclass
class ScanContext:
    """What a detector may read besides the target.

    results: outputs of detectors that ran earlier in this scan, keyed by detector id
    (e.g. the candidate target labels found by the collapse detector).
    exposure: the exposure record (modelscan_bd.exposure.ExposureResult) or None.
    """

    seed: int
    budget: str
    clean: CleanData | None = None
    exposure: Any = None
    results: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str], None] = lambda msg: None
    prompts: list[str] | None = None  # text-to-image: the user's clean prompt set (None: the built-in one)

    def generator(self, salt: int = 0) -> torch.Generator:
        """A seeded generator: same model, config and seed give the same verdict."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + salt)
        return g


class Detector:
    """Base class for detectors. Subclasses set the metadata and implement ``run``."""

    id: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    rule_id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    families: ClassVar[tuple[str, ...]] = ()
    needs_clean_data: ClassVar[bool] = False
    needs_exposure: ClassVar[bool] = False
    cost: ClassVar[str] = "low"
    # Lower runs first; detectors that read others' results come later.
    order: ClassVar[int] = 50
    # Budgets this detector runs under by default.
    budgets: ClassVar[tuple[str, ...]] = BUDGETS

    def run(self, target, context: ScanContext) -> list[Finding]:  # pragma: no cover - abstract
        raise NotImplementedError

    def finding(self, status: str, severity: str, message: str, **kw) -> Finding:
        """A finding pre-filled with this detector's metadata."""
        return Finding(rule_id=kw.pop("rule_id", self.rule_id), detector=self.id,
                       detector_version=self.version, status=status, severity=severity,
                       title=kw.pop("title", self.title), message=message, **kw)

    def skipped(self, reason: str) -> Finding:
        return self.finding("skipped", "info", reason)

    @classmethod
    def metadata(cls) -> dict[str, Any]:
        return {"id": cls.id, "version": cls.version, "rule_id": cls.rule_id, "title": cls.title,
                "families": list(cls.families), "needs_clean_data": cls.needs_clean_data,
                "cost": cls.cost}
