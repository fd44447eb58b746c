"""One scan, as data flowing forward: source -> snapshot -> family -> adapter ->
exposure -> detectors -> verdict -> report dict.

Nothing downstream reaches back to re-read files or re-resolve the source. A detector
that crashes becomes an "errored" finding; the others still run and the report is still
produced. Errors that make scanning impossible (bad source, corrupt file) raise
``ScanError`` subclasses for the CLI to turn into one line and an exit code.
"""
from __future__ import annotations

import datetime as _dt
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from . import __version__, registry, safety
from .adapters.classifier import ClassifierAdapter
from .detectors.base import CleanData, ScanContext
from .errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, UnsupportedModelError
from .exposure import BUDGET_SETTINGS, ExposureResult, expose
from .families import Family, identify
from .findings import Finding, severity_rank
from .memory import PeakMemory
from .sources import Snapshot, resolve
from .verdict import Calibration, calibrated_verdict, extract_features, load_calibration

SCHEMA_VERSION = "1.0"


@dataclass
class ScanConfig:
    budget: str = "standard"
    seed: int = 0
    fail_on: str = "high"
    clean_data: str | None = None
    clean_budget: int = 500
    detectors: list[str] | None = None
    calibration: str | None = None
    labels: list[str] | None = None  # CLIP: the zero-shot label set (default: CIFAR-10's classes)
    reference: str | None = None  # CLIP: a base/reference model the verdict is relative to
    prompts: list[str] | None = None  # text-to-image: clean prompts the trigger search inserts candidates into
    # Follow the calibration's ``budget_fallbacks`` (an architecture its budget's file cannot judge
    # runs at the budget it names); False runs the budget asked for regardless.
    budget_fallback: bool = True


@dataclass
class ScanOutcome:
    report: dict[str, Any]
    context: ScanContext | None = None
    adapter: ClassifierAdapter | None = None

    @property
    def exit_code(self) -> int:
        return int(self.report["exit_code"])


@dataclass
class Timer:
    steps: dict[str, float] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)

    def step(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.steps[name] = round(self.steps.get(name, 0.0) + now - since, 3)
        return now


def scan(source: str, config: ScanConfig | None = None,
         progress: Callable[[str], None] = lambda m: None) -> ScanOutcome:
    """Scan a hub id, ``hf://`` URL or local folder."""
    return _with_peak_memory(lambda: _scan_source(source, config or ScanConfig(), progress))


def _with_peak_memory(run: Callable[[], ScanOutcome]) -> ScanOutcome:
    """Run a scan and record the peak resident memory it reached."""
    with PeakMemory() as memory:
        outcome = run()
    outcome.report["timing"]["peak_memory_mb"] = round(memory.peak_mb, 1)
    return outcome


def _scan_source(source: str, config: ScanConfig, progress: Callable[[str], None]) -> ScanOutcome:
    timer = Timer()
    t = timer.start
    progress(f"resolving {source}")
    snapshot = resolve(source, progress)
    t = timer.step("fetch", t)
    findings = safety.check_snapshot(snapshot)
    family = identify(snapshot)
    timer.step("safety", t)
    entry = FAMILY_SCANNERS.get(family.name)
    if entry is None:
        return unsupported_outcome(snapshot, family, findings, family.reason, config, timer)
    if not snapshot.files_of("safetensors"):
        return unsupported_outcome(snapshot, family, findings, "no safetensors weights (pickle-based weights are "
                                   "never loaded)", config, timer)
    loader, scanner = entry
    t = time.perf_counter()
    progress(f"loading {family.reason}")
    try:
        adapter = loader(snapshot, family)
    except UnsupportedModelError as exc:
        return unsupported_outcome(snapshot, family, findings, str(exc), config, timer)
    timer.step("load", t)
    return scanner(adapter, snapshot, family, findings, config, timer, progress)


def scan_classifier(adapter: ClassifierAdapter, clean: CleanData | None = None, config: ScanConfig | None = None,
                    progress: Callable[[str], None] = lambda m: None, name: str = "in-memory model") -> ScanOutcome:
    """Python API: scan an in-memory classifier (see ``adapters.load_classifier.adapter_from_module``)."""
    snapshot = Snapshot(source=name, kind="module", path=None)
    family = Family("classifier", f"in-memory module {adapter.architecture}")
    return _with_peak_memory(lambda: _scan_classifier(adapter, snapshot, family, [], config or ScanConfig(),
                                                      Timer(), progress, clean=clean))


def _scan_classifier(adapter, snapshot, family, findings, config, timer, progress, clean=None) -> ScanOutcome:
    from .cleandata import load_clean_data

    t = time.perf_counter()
    calibration = load_calibration(config.calibration, budget=config.budget)
    fallback = calibration.fallback_for(adapter.architecture) if config.budget_fallback else None
    if fallback is not None:
        progress(f"budget {config.budget} -> {fallback['budget']} for {adapter.architecture}: {fallback['why']}")
        fallback = {"requested": config.budget, "ran": fallback["budget"], "why": fallback["why"]}
        config = replace(config, budget=fallback["ran"])
        calibration = load_calibration(budget=config.budget)
    if clean is None and config.clean_data:
        progress(f"loading clean data from {config.clean_data}")
        clean = load_clean_data(config.clean_data, adapter, budget=config.clean_budget, seed=config.seed)
    t = timer.step("clean_data", t)
    context = ScanContext(seed=config.seed, budget=config.budget, clean=clean, progress=progress,
                          results={"calibration": calibration.detectors})
    selected = registry.select("classifier", config.budget, config.detectors)
    incomplete: list[str] = []
    broken = nonfinite_outputs(adapter, clean, config.seed)
    if broken:
        # Every detector would optimise through NaN and report noise (e.g. a negative BatchNorm
        # running variance, as DARE-sampled merges left before merging.py floored it): say so,
        # scan nothing.
        findings.append(Finding(rule_id="MSBD-F002", detector="outputs", detector_version="1", status="errored",
                                severity="info", title="Model outputs are not finite", message=broken))
        selected = []
    context.exposure = run_exposure(adapter, clean, config, selected, progress, incomplete)
    timer.step("exposure", t)
    run_detectors(selected, adapter, context, findings, timer)
    incomplete.extend(incomplete_reasons(findings))
    verdict, verdict_finding = _verdict(adapter, context, calibration, incomplete)
    if fallback is not None:
        verdict["summary"] += (f" Scanned at budget {fallback['ran']}, not {fallback['requested']}: "
                               f"{fallback['why']} (--no-budget-fallback runs {fallback['requested']}).")
        verdict_finding.message = verdict["summary"]
    findings.append(verdict_finding)
    report = build_report(snapshot, family, classifier_info(adapter), findings, verdict, context.exposure, config,
                          timer, clean, budget_fallback=fallback)
    return ScanOutcome(report=report, context=context, adapter=adapter)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def run_detectors(selected, target, context: ScanContext, findings: list[Finding], timer: Timer) -> None:
    """Run each selected detector on ``target`` (any family's adapter), in order, appending
    its findings. A detector that crashes becomes an *errored* finding; the others still run."""
    t = time.perf_counter()
    for cls in selected:
        detector = cls()
        _seed_everything(context.seed)
        if cls.needs_clean_data and context.clean is None:
            findings.append(detector.skipped("needs clean reference data (--clean-data); none was given"))
        else:
            context.progress(f"detector {cls.id}")
            try:
                findings.extend(detector.run(target, context))
            except Exception as exc:  # one detector failing never loses the others' results
                findings.append(detector.finding("errored", "info", f"{type(exc).__name__}: {str(exc)[:300]}"))
        t = timer.step(cls.id, t)


def nonfinite_outputs(adapter, clean, seed: int) -> str | None:
    """Why the model cannot be scanned, if its logits are NaN or infinite on the clean images
    (on 16 seeded uniform-noise images without clean data); None when they are finite."""
    if clean is not None:
        images, what = clean.holdout_images, "held-out clean images"
    else:
        images = torch.rand((16, *adapter.input_size), generator=torch.Generator().manual_seed(seed))
        what = "noise images (no clean data given)"
    bad = int((~torch.isfinite(adapter.logits(images))).any(1).sum())
    if not bad:
        return None
    return (f"the model's logits are NaN or infinite on {bad} of {len(images)} {what}: broken weights or "
            f"BatchNorm statistics (e.g. a negative running variance); no detector can read it")


def incomplete_reasons(findings: list[Finding]) -> list[str]:
    """Why a scan is incomplete: every detector that was skipped or errored."""
    return [f"{f.detector} {f.status}: {f.message}" for f in findings
            if f.status in ("skipped", "errored") and f.detector != "safety"]


def run_exposure(adapter, clean, config, selected, progress, incomplete) -> ExposureResult:
    """EBYD exposure of a classifier view (a classifier, or a CLIP zero-shot classifier)."""
    if not any(c.needs_exposure for c in selected):
        return ExposureResult(status="skipped", reason="no selected detector uses exposure")
    if clean is None:
        reason = "no clean reference data given (--clean-data); only data-free detectors ran"
        incomplete.append(f"exposure skipped: {reason}")
        return ExposureResult(status="skipped", reason=reason)
    try:
        _seed_everything(config.seed)
        return expose(adapter, clean, config.seed, BUDGET_SETTINGS[config.budget], progress)
    except Exception as exc:
        incomplete.append(f"exposure errored: {type(exc).__name__}: {exc}")
        return ExposureResult(status="errored", reason=f"{type(exc).__name__}: {str(exc)[:300]}")


def _verdict(adapter, context: ScanContext, cal: Calibration, incomplete: list[str]) -> tuple[dict, Finding]:
    trig = context.results.get("trigger-recovery") or {}
    collapse = context.results.get("exposure-collapse") or {}
    dominant = (collapse.get("agreement", 0) >= 0.5) or (trig.get("log_ratio") or 0) >= \
        cal.detectors.get("trigger", {}).get("log_ratio_threshold", 1.0)
    # An all-to-all map with no recovered all-to-one trigger: every label is a target, none is "the" one.
    all_to_all = bool((context.results.get("label-map") or {}).get("flagged")) and not trig.get("flagged")
    pair = context.results.get("pair-trigger") or {}
    # A flagged pair trigger with no universal trigger recovered: one source class goes to the target.
    source_specific = bool(pair.get("flagged")) and not any(
        (context.results.get(k) or {}).get("flagged") for k in UNIVERSAL_TRIGGERS)
    picked = [] if all_to_all else [(t, adapter.labels[t]) for t in _suspected_targets(context.results)]
    names = ", ".join(f"{t} ({n})" for t, n in picked)

    def pattern(status: str) -> str:
        if status not in ("BACKDOORED", "SUSPICIOUS"):
            return "none"
        if all_to_all:
            return "all-to-all"
        if source_specific:
            return "source-specific"
        return "all-to-one" if dominant else "no-dominant-label"

    def note(status: str) -> str:
        if pattern(status) == "all-to-all":
            return " An untargeted trigger sends each class to its own label (all-to-all label map)."
        if pattern(status) == "source-specific":
            s = pair["source"]
            return (f" A small patch sends one source class, {s} ({adapter.labels[s]}), to the target; no trigger"
                    " works on every class (source-specific).")
        if pattern(status) != "no-dominant-label":
            return ""
        return " No single label dominates: the backdoor may be all-to-all or multi-target."

    detail = "; all-to-all" if all_to_all else f"; suspected target {names or 'unknown'}"
    return calibrated_verdict(extract_features(context.results), cal, incomplete, detail=detail, note=note,
                              pattern=pattern, targets=lambda: picked, num_classes=adapter.num_classes,
                              architecture=adapter.architecture)


# The detectors whose flagged trigger works on every class, the most specific evidence first.
UNIVERSAL_TRIGGERS = ("trigger-recovery", "signal-trigger", "warp-trigger", "feature-trigger")


def _suspected_targets(results: dict) -> list[int]:
    """The label of the most specific evidence: a recovered patch/blend trigger, else a recovered
    signal (SIG-style) or warp (WaNet-style) trigger, which that inversion cannot express, else a
    feature-space trigger (input-aware: no input-space trigger is shared by every image), else a
    pair trigger (source-specific: a trigger that works on one class only).
    With none recovered, a signal that works on held-out images but misses the gap cut still
    names the target before the unflagged patch/blend trigger: on the CIFAR-10 zoos such a
    trigger's label was a natural one (automobile, truck) on most SIG models (docs/bench/target-rule).
    Then a significant MM-BD test (Wang et al., 2023) names its label before the unflagged trigger's
    and the collapse's: at ``fast`` no signal step runs, and on SIG ViTs the unflagged trigger named
    the ViTs' natural sink while MM-BD named the target (docs/bench/target-rule/PLAN-mmbd.md)."""
    if not (results.get("trigger-recovery") or {}).get("flagged"):
        for key in UNIVERSAL_TRIGGERS[1:] + ("pair-trigger",):
            r = results.get(key) or {}
            if r.get("flagged"):
                return [int(r["label"])]
        signal = results.get("signal-trigger") or {}
        if signal.get("works") and signal.get("label") is not None:
            return [int(signal["label"])]
        mmbd = results.get("mmbd") or {}
        if mmbd.get("flagged") and mmbd.get("target") is not None:
            return [int(mmbd["target"])]
    for key in ("trigger-recovery", "exposure-collapse", "mmbd"):
        r = results.get(key) or {}
        label = r.get("label", r.get("target"))
        if label is not None:
            return [int(label)]
    return []


def unsupported_outcome(snapshot, family, findings, why, config, timer) -> ScanOutcome:
    """The outcome for a model that cannot be scanned: INCOMPLETE (exit 3), never clean."""
    findings.append(Finding(rule_id="MSBD-F001", detector="family", detector_version="1", status="skipped",
                            severity="info", title="Model not scannable", message=why,
                            evidence={"family": family.name, "reason": family.reason}))
    verdict = {"status": "INCOMPLETE", "probability": None, "suspected_targets": [], "pattern": "none",
               "summary": f"Not scanned: {why}.", "incomplete_reasons": [why], "calibration": None}
    report = build_report(snapshot, family, None, findings, verdict, ExposureResult("skipped", why), config, timer)
    return ScanOutcome(report=report)


def exit_code_for(findings: list[dict], verdict: dict, fail_on: str) -> int:
    """0 nothing at or above fail-on; 1 findings at or above it; 3 incomplete."""
    if any(f["status"] == "failed" and severity_rank(f["severity"]) >= severity_rank(fail_on) for f in findings):
        return EXIT_FINDINGS
    if verdict["status"] == "INCOMPLETE" or verdict["incomplete_reasons"]:
        return EXIT_INCOMPLETE
    return EXIT_OK


def _environment() -> dict[str, Any]:
    import numpy
    import transformers

    import huggingface_hub

    return {"modelscan_bd": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "huggingface_hub": huggingface_hub.__version__, "numpy": numpy.__version__,
            "device": "cpu", "threads": torch.get_num_threads()}


def classifier_info(adapter: ClassifierAdapter) -> dict[str, Any]:
    """The report's family fields for a classifier."""
    return {"architecture": adapter.architecture, "num_classes": adapter.num_classes, "labels": list(adapter.labels),
            "preprocess": adapter.preprocess.to_dict()}


def build_report(snapshot: Snapshot, family: Family, family_info: dict[str, Any] | None, findings, verdict, exposure,
                 config, timer: Timer, clean: CleanData | None = None,
                 budget_fallback: dict[str, str] | None = None) -> dict:
    """The JSON report (the source of truth) for any family.

    family_info: the adapter's own fields for the report's ``family`` object
    (architecture, num_classes, labels, preprocess, and family-specific extras).
    budget_fallback: {"requested", "ran", "why"} when the scan ran another budget than the one
    asked for (``Calibration.budget_fallbacks``); ``config.budget`` is the one that ran.
    """
    finding_dicts = [f.to_dict() for f in findings]
    fam = {"name": family.name if family.name in ("classifier", "clip", "diffusion", "text-to-image") else "unsupported",
           "reason": family.reason, "architecture": None, "num_classes": None, "labels": None, "preprocess": None}
    fam.update(family_info or {})
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "modelscan-bd", "version": __version__},
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "target": snapshot.to_dict(),
        "environment": _environment(),
        "config": {"budget": config.budget, "seed": config.seed, "fail_on": config.fail_on,
                   "clean_data": None if clean is None else {**clean.describe(), "budget": config.clean_budget},
                   "detectors": config.detectors or [],
                   **({"budget_fallback": budget_fallback} if budget_fallback else {})},
        "family": fam,
        "verdict": verdict,
        "exposure": exposure.to_dict(),
        "findings": finding_dicts,
        "timing": {"total_seconds": round(time.perf_counter() - timer.start, 3), "steps": timer.steps,
                   "peak_memory_mb": None},
    }
    report["exit_code"] = exit_code_for(finding_dicts, verdict, config.fail_on)
    return report


# Each family's loader and scanner are imported only when a model of that family is scanned
# (their modules import this one, and their libraries are slow to import).
def _load_classifier(snapshot, family):
    from .adapters.load_classifier import load_classifier

    return load_classifier(snapshot, family)


def _load_clip(snapshot, family):
    from .adapters.clip import load_clip

    return load_clip(snapshot, family)


def _load_diffusion(snapshot, family):
    from .adapters.diffusion import load_diffusion

    return load_diffusion(snapshot, family)


def _load_text_to_image(snapshot, family):
    from .adapters.text_to_image import load_text_to_image

    return load_text_to_image(snapshot, family)


def _scan_clip(*args) -> ScanOutcome:
    from .scan_clip import scan_clip_adapter

    return scan_clip_adapter(*args)


def _scan_diffusion(*args) -> ScanOutcome:
    from .scan_diffusion import scan_diffusion_adapter

    return scan_diffusion_adapter(*args)


def _scan_text_to_image(*args) -> ScanOutcome:
    from .scan_text_to_image import scan_text_to_image_adapter

    return scan_text_to_image_adapter(*args)


# family name -> (loader(snapshot, family) -> adapter,
#                 scanner(adapter, snapshot, family, findings, config, timer, progress) -> ScanOutcome).
# A loader raises UnsupportedModelError for what it cannot load: the scan is then INCOMPLETE
# (exit 3). A family without an entry is reported INCOMPLETE too, never clean.
FAMILY_SCANNERS: dict[str, tuple[Callable[..., Any], Callable[..., ScanOutcome]]] = {
    "classifier": (_load_classifier, _scan_classifier),
    "clip": (_load_clip, _scan_clip),
    "diffusion": (_load_diffusion, _scan_diffusion),
    "text-to-image": (_load_text_to_image, _scan_text_to_image),
}
