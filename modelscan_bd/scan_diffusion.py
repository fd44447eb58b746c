"""The diffusion family's scanner: adapter -> data-free detectors -> calibrated verdict -> report.

Registered in ``scan.FAMILY_SCANNERS["diffusion"]`` (with the adapter's loader); it reuses
``build_report`` and the shared detector loop, so the report has the same shape and exit
codes as a classifier's.
"""
from __future__ import annotations

import math
from typing import Any

from . import registry
from .detectors.base import ScanContext
from .detectors.diffusion_inversion import FEATURES as STATISTICS
from .exposure import ExposureResult
from .findings import Finding
from .verdict import Calibration, load_calibration, probability, severity_for, status_for, summary_for

# The combiner's inputs. A 7-statistic combiner fitted on the 7-model fitting split overfit
# (held-out AUROC 0.53 against 0.90 for the structured near-duplicate share alone; see
# docs/bench/diffusion/), so until the zoo is larger the verdict uses that one statistic;
# the others stay in the report as evidence.
FEATURES = ("structured_dup",)


def diffusion_features(results: dict[str, Any]) -> dict[str, float | None]:
    """Every statistic of the inversion (the verdict reads the calibration's features from these)."""
    r = results.get("diffusion-inversion") or {}
    return {k: (None if r.get(k) is None or not math.isfinite(float(r[k])) else float(r[k])) for k in STATISTICS}


def scan_diffusion_adapter(adapter, snapshot, family, findings, config, timer, progress):
    """Detect, decide and report for a loaded diffusion adapter."""
    from .scan import ScanOutcome, build_report, incomplete_reasons, run_detectors

    try:
        calibration = load_calibration(config.calibration, family="diffusion")
    except FileNotFoundError:  # only before the first `bench --calibrate` has shipped one
        calibration = None
    context = ScanContext(seed=config.seed, budget=config.budget, progress=progress, results={})
    selected = registry.select("diffusion", config.budget, config.detectors)
    incomplete: list[str] = []
    run_detectors(selected, adapter, context, findings, timer)
    incomplete.extend(incomplete_reasons(findings))
    if "diffusion-inversion" not in context.results:
        incomplete.append("diffusion-inversion did not run")
    if calibration is None:
        incomplete.append("no diffusion calibration file (run `modelscan-bd bench --calibrate` on a diffusion zoo)")
    verdict, finding = diffusion_verdict(context, calibration, incomplete)
    findings.append(finding)
    report = build_report(snapshot, family, adapter.describe(), findings, verdict,
                          ExposureResult("skipped", "exposure is not used for diffusion models"), config, timer)
    return ScanOutcome(report=report, context=context, adapter=adapter)


def diffusion_verdict(context: ScanContext, cal: Calibration | None, incomplete: list[str]) -> tuple[dict, Finding]:
    features = diffusion_features(context.results)
    if cal is None:
        verdict = {"status": "INCOMPLETE", "probability": None, "suspected_targets": [], "pattern": "none",
                   "summary": "Not fully scanned: " + "; ".join(incomplete[:3]), "incomplete_reasons": incomplete,
                   "features": features, "calibration": None}
        return verdict, Finding(rule_id="MSBD-V001", detector="verdict", detector_version="none", status="skipped",
                                severity="info", title="Backdoor model detection (calibrated verdict)",
                                message=verdict["summary"], evidence={"features": features})
    p, missing = probability(features, cal)
    status = status_for(p, cal, bool(incomplete))
    r = context.results.get("diffusion-inversion") or {}
    where = f" (inverted trigger fires under {str(r.get('sampler', '?')).upper()}; recovered target attached)"
    summary = summary_for(status, p, where, incomplete)
    verdict = {"status": status, "probability": round(p, 4), "suspected_targets": [],
               "pattern": "all-to-one" if status in ("BACKDOORED", "SUSPICIOUS") else "none",
               "summary": summary, "incomplete_reasons": incomplete,
               "features": {k: (None if v is None else round(v, 4)) for k, v in features.items()},
               "calibration": cal.describe()}
    severity = severity_for(status, p)
    finding = Finding(rule_id="MSBD-V001", detector="verdict", detector_version=cal.version,
                      status="failed" if status in ("BACKDOORED", "SUSPICIOUS") else "passed",
                      severity=severity, title="Backdoor model detection (calibrated verdict)", message=summary,
                      score=p, threshold=cal.backdoored_threshold,
                      evidence={"features": verdict["features"], "filled_features": missing,
                                "suspicious_threshold": cal.suspicious_threshold, "calibration": cal.describe()})
    return verdict, finding
