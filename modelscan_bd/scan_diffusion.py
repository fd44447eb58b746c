"""The diffusion family's scanner: adapter -> data-free detectors -> calibrated verdict -> report.

Registered in ``scan.FAMILY_SCANNERS["diffusion"]`` (with the adapter's loader); it reuses
``build_report`` and the shared detector loop, so the report has the same shape and exit
codes as a classifier's.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from . import registry
from .detectors.base import ScanContext
from .detectors.diffusion_inversion import FEATURES as STATISTICS
from .exposure import ExposureResult
from .findings import Finding
from .verdict import (Calibration, calibrated_verdict, combiner_probability, load_calibration, reference_tests,
                      uncalibrated_verdict)

# The combiner's inputs. A 7-statistic combiner fitted on the 7-model fitting split overfit
# (held-out AUROC 0.53 against 0.90 for the structured near-duplicate share alone; see
# docs/bench/diffusion/), so until the zoo is larger the verdict uses that one statistic;
# the others stay in the report as evidence.
FEATURES = ("structured_dup",)
# Judged against the fitting split's clean models instead (``Calibration.references``): the
# noise-scale slope is low for TrojDiff-style models, which are held out of fitting, so the
# combiner could learn no weight for it (direction -1: a low slope is suspicious).
REFERENCES = {"noise_scale_slope": -1}


def diffusion_features(results: dict[str, Any]) -> dict[str, float | None]:
    """Every statistic of the inversion (the verdict reads the calibration's features from these)."""
    r = results.get("diffusion-inversion") or {}
    return {k: (None if r.get(k) is None or not math.isfinite(float(r[k])) else float(r[k])) for k in STATISTICS}


def scan_diffusion_adapter(adapter, snapshot, family, findings, config, timer, progress):
    """Detect, decide and report for a loaded diffusion adapter."""
    return scan_generative(adapter, snapshot, family, findings, config, timer, progress, name="diffusion",
                           detector="diffusion-inversion", decide=diffusion_verdict)


def scan_generative(adapter, snapshot, family, findings, config, timer, progress, *, name: str, detector: str,
                    decide: Callable[[ScanContext, Calibration | None, list[str]], tuple[dict, Finding]]):
    """The scan of a family without exposure (diffusion, text-to-image): its detectors, then the
    calibrated verdict (INCOMPLETE when the main ``detector`` did not run or no calibration ships)."""
    from .scan import ScanOutcome, build_report, incomplete_reasons, run_detectors

    try:
        calibration = load_calibration(config.calibration, family=name, budget=config.budget)
    except FileNotFoundError:  # only before the first `bench --calibrate` has shipped one
        calibration = None
    context = ScanContext(seed=config.seed, budget=config.budget, progress=progress, results={},
                          prompts=config.prompts)
    run_detectors(registry.select(name, config.budget, config.detectors), adapter, context, findings, timer)
    incomplete = incomplete_reasons(findings)
    if detector not in context.results:
        incomplete.append(f"{detector} did not run")
    if calibration is None:
        incomplete.append(f"no {name} calibration file (run `modelscan-bd bench --calibrate` on a {name} zoo)")
    verdict, finding = decide(context, calibration, incomplete)
    findings.append(finding)
    report = build_report(snapshot, family, adapter.describe(), findings, verdict,
                          ExposureResult("skipped", f"exposure is not used for {name} models"), config, timer)
    return ScanOutcome(report=report, context=context, adapter=adapter)


def diffusion_verdict(context: ScanContext, cal: Calibration | None, incomplete: list[str]) -> tuple[dict, Finding]:
    features = diffusion_features(context.results)
    if cal is None:
        return uncalibrated_verdict(features, incomplete)
    r = context.results.get("diffusion-inversion") or {}
    parts = []
    if combiner_probability(features, cal)[0] >= cal.suspicious_threshold:
        parts.append(f"inverted trigger fires under {str(r.get('sampler', '?')).upper()}; recovered target attached")
    scale = reference_tests(features, cal).get("noise_scale_slope")
    if scale and scale["p"] >= cal.suspicious_threshold:
        parts.append(f"reduced-amplitude noise is denoised as if trained on it, like a TrojDiff-style noise-scale "
                     f"trigger: slope {features['noise_scale_slope']:.2f}, {scale['z']:.1f} clean deviations "
                     "below the clean references")
    return calibrated_verdict(
        features, cal, incomplete, detail=f" ({'; '.join(parts)})" if parts else "",
        pattern=lambda status: "all-to-one" if status in ("BACKDOORED", "SUSPICIOUS") else "none")
