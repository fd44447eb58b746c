"""Detector discovery: built-ins plus the ``modelscan_bd.detectors`` entry-point group."""
from __future__ import annotations

from importlib.metadata import entry_points

from .detectors.base import Detector
from .errors import UsageError

ENTRY_POINT_GROUP = "modelscan_bd.detectors"


def _builtins() -> list[type[Detector]]:
    from .detectors.clip_zeroshot import ZeroShotCollapseDetector, ZeroShotTriggerDetector
    from .detectors.collapse import ExposureCollapseDetector
    from .detectors.decree import EncoderTriggerDetector
    from .detectors.diffusion_inversion import DiffusionInversionDetector
    from .detectors.feature import FeatureTriggerDetector
    from .detectors.label_map import LabelMapDetector
    from .detectors.mmbd import MaxMarginDetector
    from .detectors.pair import PairTriggerDetector
    from .detectors.signal import SignalTriggerDetector
    from .detectors.t2i_assimilation import T2IAssimilationDetector
    from .detectors.trigger import TriggerRecoveryDetector
    from .detectors.warp import WarpTriggerDetector

    return [ExposureCollapseDetector, TriggerRecoveryDetector, LabelMapDetector, MaxMarginDetector,
            SignalTriggerDetector, WarpTriggerDetector, FeatureTriggerDetector, PairTriggerDetector,
            EncoderTriggerDetector,
            ZeroShotCollapseDetector, ZeroShotTriggerDetector, DiffusionInversionDetector, T2IAssimilationDetector]


def all_detectors() -> list[type[Detector]]:
    """Every known detector class, built-ins first; a plugin cannot shadow a built-in id."""
    found = {cls.id: cls for cls in _builtins()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception:  # a broken third-party plugin must not break scanning
            continue
        if isinstance(cls, type) and issubclass(cls, Detector) and cls.id and cls.id not in found:
            found[cls.id] = cls
    return sorted(found.values(), key=lambda c: (c.order, c.id))


def select(family: str, budget: str, only: list[str] | None = None) -> list[type[Detector]]:
    """Detectors for a family and budget, or exactly those named in ``only``."""
    chosen = [c for c in all_detectors() if family in c.families]
    if only:
        unknown = sorted(set(only) - {c.id for c in chosen})
        if unknown:
            raise UsageError(f"unknown detector(s) for {family}: {', '.join(unknown)}")
        return [c for c in chosen if c.id in only]
    return [c for c in chosen if budget in c.budgets]
