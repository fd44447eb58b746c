"""The CLIP family's scan: adapter -> (reference) -> exposure of the zero-shot view ->
detectors -> relative verdict -> report.

Registered in ``scan.FAMILY_SCANNERS["clip"]``; it reuses the classifier scan's pieces
(``build_report``, ``unsupported_outcome``, ``Timer``, the exposure and the report
writers). The verdict is relative by construction: the encoder statistic (DECREE's PL1)
enters it only as a ratio to clean references of the family (calibration file) or to
the base model the user names with ``--reference``.
"""
from __future__ import annotations

import math
import time
from typing import Callable

from . import registry
from .adapters.clip import ClipAdapter, load_clip
from .detectors.base import CleanData, ScanContext
from .errors import UnsupportedModelError
from .families import Family, identify
from .sources import Snapshot, resolve
from .verdict import Calibration, calibrated_verdict, load_calibration

CLIP_FEATURES = ("decree_relative", "collapse_concentration", "collapse_agreement", "trigger_log_ratio",
                 "trigger_holdout_success")


def clip_features(results: dict) -> dict[str, float | None]:
    """The CLIP combiner's inputs, from what the detectors left in ``context.results``."""
    decree = results.get("decree") or {}
    collapse = results.get("clip-collapse") or {}
    trig = results.get("clip-trigger") or {}
    clip = lambda v, lo, hi: None if v is None else max(lo, min(hi, float(v)))  # noqa: E731
    return {"decree_relative": clip(decree.get("relative"), -3.0, 5.0),
            "collapse_concentration": collapse.get("concentration"),
            "collapse_agreement": collapse.get("agreement"),
            "trigger_log_ratio": clip(trig.get("log_ratio"), -3.0, 5.0),
            "trigger_holdout_success": trig.get("holdout_success")}


def scan_clip(adapter: ClipAdapter, clean: CleanData | None = None, config=None,
              progress: Callable[[str], None] = lambda m: None, name: str = "in-memory CLIP model"):
    """Python API: scan an in-memory CLIP adapter (see ``adapters.clip.clip_from_open_clip_model``)."""
    from .scan import ScanConfig, Timer, _with_peak_memory

    snapshot = Snapshot(source=name, kind="module", path=None)
    family = Family("clip", f"in-memory {adapter.architecture}", adapter.library)
    return _with_peak_memory(lambda: scan_clip_adapter(adapter, snapshot, family, [], config or ScanConfig(),
                                                       Timer(), progress, clean=clean))


def _reference_statistic(source: str, clean: CleanData, config, progress) -> dict:
    """DECREE's PL1 on the user's base model, with the same images, budget and seed."""
    from .detectors.decree import decree_statistic

    progress(f"reference model {source}")
    snapshot = resolve(source, progress)
    family = identify(snapshot)
    if family.name != "clip":
        raise UnsupportedModelError(f"reference {source} is not a CLIP model ({family.reason})")
    ref = load_clip(snapshot, family)
    if ref.input_size != clean.images.shape[1:]:
        raise UnsupportedModelError(f"reference {source} takes {ref.input_size}, the scanned model "
                                    f"{tuple(clean.images.shape[1:])}")
    ctx = ScanContext(seed=config.seed, budget=config.budget)
    stat = decree_statistic(ref, clean.exposure_images, clean.holdout_images, config.budget, ctx.generator(salt=5))
    return {"pl1": stat["pl1"], "source": f"{source}@{snapshot.sha}" if snapshot.sha else source,
            "holdout_similarity": stat["holdout_similarity"]}


def scan_clip_adapter(adapter: ClipAdapter, snapshot, family, findings, config, timer, progress, clean=None):
    from .cleandata import load_clean_data
    from .scan import ScanOutcome, build_report, incomplete_reasons, run_detectors, run_exposure

    labels = getattr(config, "labels", None)
    if labels:
        adapter.labels = list(labels)
        adapter._zero_shot = None
    t = time.perf_counter()
    calibration = load_calibration(config.calibration, family="clip", budget=config.budget)
    zero_shot = adapter.zero_shot()
    if clean is None and config.clean_data:
        progress(f"loading clean data from {config.clean_data}")
        clean = load_clean_data(config.clean_data, zero_shot, budget=config.clean_budget, seed=config.seed)
    t = timer.step("clean_data", t)
    context = ScanContext(seed=config.seed, budget=config.budget, clean=clean, progress=progress,
                          results={"calibration": calibration.detectors})
    incomplete: list[str] = []
    reference = getattr(config, "reference", None)
    if reference and clean is not None:
        try:
            context.results["reference-decree"] = _reference_statistic(reference, clean, config, progress)
        except Exception as exc:  # the scan still runs; the verdict falls back to the calibration references
            incomplete.append(f"reference model {reference} unusable: {type(exc).__name__}: {str(exc)[:200]}")
        t = timer.step("reference", t)
    selected = registry.select("clip", config.budget, config.detectors)
    context.exposure = run_exposure(zero_shot, clean, config, selected, progress, incomplete)
    timer.step("exposure", t)
    run_detectors(selected, adapter, context, findings, timer)
    incomplete.extend(incomplete_reasons(findings))
    verdict, verdict_finding = clip_verdict(adapter, context, calibration, incomplete)
    findings.append(verdict_finding)
    report = build_report(snapshot, family, adapter.describe(), findings, verdict, context.exposure, config, timer,
                          clean)
    return ScanOutcome(report=report, context=context, adapter=zero_shot)


def suspected_concept(results: dict) -> int | None:
    for key in ("clip-trigger", "clip-collapse"):
        label = (results.get(key) or {}).get("label")
        if label is not None:
            return int(label)
    return None


def clip_verdict(adapter: ClipAdapter, context: ScanContext, cal: Calibration, incomplete: list[str]):
    target = suspected_concept(context.results)
    name = None if target is None else adapter.labels[target]
    rel = (context.results.get("decree") or {}).get("relative")
    basis = ("relative to the reference model" if "reference-decree" in context.results
             else "relative to the family's clean reference models")
    ref = context.results.get("reference-decree")
    flagged = ("BACKDOORED", "SUSPICIOUS")
    return calibrated_verdict(
        clip_features(context.results), cal, incomplete,
        detail=f"; suspected target concept '{name or 'unknown'}'",
        note="" if rel is None else f" Encoder trigger {math.exp(rel):.2f}x smaller than expected ({basis}).",
        targets=lambda: [] if target is None else [(target, name)],
        title="Backdoor model detection (calibrated, relative verdict)",
        extra={"reference": {"source": ref["source"], "pl1": round(ref["pl1"], 5)}} if ref else None,
        evidence=lambda status: {"target_text": name} if name and status in flagged else {})

