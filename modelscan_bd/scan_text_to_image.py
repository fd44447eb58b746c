"""The text-to-image family's scanner: adapter -> caption-trigger search -> calibrated verdict -> report.

Registered in ``scan.FAMILY_SCANNERS["text-to-image"]`` with the adapter's loader; it
reuses ``build_report`` and the shared detector loop, so the report has the same shape and
exit codes as the other families'.
"""
from __future__ import annotations

import math
from typing import Any

from .detectors.base import ScanContext
from .findings import Finding
from .scan_diffusion import scan_generative
from .verdict import Calibration, calibrated_verdict, uncalibrated_verdict

# Every statistic goes into the report; the calibration file names those the combiner reads.
STATISTICS = ("assimilation_z", "assimilation_abs_z", "collapse_z", "collapse_log_ratio")
FEATURES = ("collapse_log_ratio",)  # the effect size, not its z (see detectors/t2i_assimilation.py)


def t2i_features(results: dict[str, Any]) -> dict[str, float | None]:
    r = results.get("t2i-assimilation") or {}
    return {k: (None if r.get(k) is None or not math.isfinite(float(r[k])) else float(r[k])) for k in STATISTICS}


def scan_text_to_image_adapter(adapter, snapshot, family, findings, config, timer, progress):
    """Detect, decide and report for a loaded text-to-image adapter."""
    return scan_generative(adapter, snapshot, family, findings, config, timer, progress, name="text-to-image",
                           detector="t2i-assimilation", decide=t2i_verdict)


def t2i_verdict(context: ScanContext, cal: Calibration | None, incomplete: list[str]) -> tuple[dict, Finding]:
    features = t2i_features(context.results)
    if cal is None:
        return uncalibrated_verdict(features, incomplete)
    trigger = (context.results.get("t2i-assimilation") or {}).get("trigger")
    flagged = ("BACKDOORED", "SUSPICIOUS")
    return calibrated_verdict(
        features, cal, incomplete,
        detail=f"; suspected caption trigger {trigger!r}" if trigger else "",
        pattern=lambda status: "caption-trigger" if status in flagged else "none",
        extra=lambda status: {"suspected_trigger": trigger} if status in flagged else {},
        evidence=lambda status: {"suspected_trigger": trigger if status in flagged else None})
