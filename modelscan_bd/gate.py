"""The pre-merge gate: scan a merge's candidates, and the merge itself, before it happens.

A backdoored fine-tune passes its backdoor into a merge (DAM, arXiv 2410.13910: backdoor
"succession"), and BadMerging (Zhang et al., CCS 2024) builds backdoors that fire only
after merging. So each candidate is judged on four kinds of evidence:

1. its own family scan (``scan_classifier``: exposure, detectors, calibrated verdict);
2. weight space relative to the base and its peers: per-layer task-vector norms and
   directions (cosine to the peers' summed task vector) as robust z-scores, median and
   MAD over the candidates, one-sided (larger, or further from the peers' direction); a
   warning signal only, since legitimate tasks also differ;
3. exposure in task-vector space: theta_0 + lambda * tau with lambda > 1 (merging scales
   task vectors; amplifying one brings out what it carries) and theta_0 + trim(tau), TIES'
   magnitude trimming, which keeps exactly the largest entries a merge keeps; each
   variant goes through the same family scan;
4. the simulated merge with the configured method and weights (``merging``), scanned;
   when it is flagged, leave-one-out merges attribute the backdoor: a candidate whose
   removal clears the merge is blocked, even if it looked clean alone.

Verdicts: block (a calibrated BACKDOORED verdict on the candidate or one of its
variants, attribution, or an unsafe file), warn (SUSPICIOUS, a weight-space outlier, or
not fully scanned), pass. Exit codes follow the scan's contract (see ``gate_exit_code``).
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable

import torch

from . import __version__, safety
from .adapters.classifier import ClassifierAdapter
from .detectors.base import CleanData
from .errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, InputError, UnsupportedModelError
from .families import identify
from .findings import Finding, severity_rank
from .gate_config import GateConfig
from .memory import PeakMemory
from .merging import check_compatible, merge_state_dicts, scaled, task_vector
from .scan import ScanConfig, Timer, _environment, scan_classifier
from .sources import Snapshot, resolve
from .verdict import extract_features, load_calibration, probability, status_for, summary_for

GATE_SCHEMA_VERSION = "1.0"
FLAG_LEVEL = {"BACKDOORED": 2, "SUSPICIOUS": 1}
VARIANT_DETECTORS = ("exposure-collapse", "trigger-recovery")
MAD_SCALE = 1.4826  # MAD of a normal sample times this estimates its standard deviation
REL_FLOOR = 0.05  # deviations under 5 % of the median are never outliers (few peers: tiny MADs)
Progress = Callable[[str], None]


@dataclass
class GateOptions:
    clean_data: str | None = None
    clean_budget: int = 300
    # The CLI's default too: the gate's merging calibration and every merging benchmark ran at `fast`.
    budget: str = "fast"
    seed: int = 0
    fail_on: str = "high"
    amplify: tuple[float, ...] = (1.5,)
    trim_density: float = 1.0  # 1: no trimmed variant (the simulated TIES merge already keeps what it keeps)
    z_threshold: float = 3.5  # Iglewicz & Hoaglin's cut-off for modified z-scores
    outlier_share: float = 0.25  # share of layers beyond the cut-off that makes a weight-space warning
    leave_one_out: str = "flagged"  # flagged | always | never
    detectors: list[str] | None = None
    calibration: str | None = None
    # Weight-space variants and merges: a lean detector set (MM-BD reads amplified logits
    # poorly and costs a third of a scan) and the merging calibration fitted on such models.
    variant_detectors: tuple[str, ...] = VARIANT_DETECTORS
    variant_calibration: str | None = None  # default: calibration/merging.json
    min_relative_accuracy: float = 0.5  # a variant below half the base's clean accuracy is not a usable model
    attribution_drop: float = 0.5  # removing the culprit takes away at least half the merge trigger's success
    # A candidate's trigger inverted against the base counts as planted from this log size
    # ratio (4x smaller than the median label's). Clean candidates of the two fitting zoos
    # reached 0.62, BadNets and Blended ones 2.0-2.8; held-out clean ones reached 1.00 and 1.03,
    # and the latter was blocked under the calibration's ln 2.5 (docs/bench/merging/NOTES.md).
    planted_log_ratio: float = math.log(4)
    # A smaller ratio counts when no peer candidate shares the trigger: it works through every
    # other candidate of the merge on at most ``peer_transfer`` of the images. Natural patches of
    # the shared base transfer between its fine-tunes; a planted trigger does not. Both cuts were
    # read off the two fitting zoos alone (clean candidates with peers at <= 0.1 reached 0.42;
    # docs/bench/merging/NOTES.md).
    specific_log_ratio: float = 0.5
    peer_transfer: float = 0.1
    # The candidate's trigger is inverted against the base from this many starts (seeds seed,
    # seed + 1, ...); both tests read the starts' mean log ratio and success and each peer's
    # largest success. One start's verdicts moved with its seed: on twelve zoos, clean instances
    # flagged 5 / 20 / 7 of 292 at seeds 0 / 1 / 2 and BadMerging candidates 32 / 33 / 31 of 36;
    # two starts flag 4-10 and 31-35 over the three pairs of seeds (docs/bench/merging/NOTES.md).
    candidate_restarts: int = 2
    # A further start is inverted only while one more could still move the verdict: the tests,
    # re-applied to the starts so far with every number moved by these margins towards flagging
    # and away from it, disagree. The margins (log ratio, success through the candidate, through
    # the base, a peer's largest success) are half the 95th percentile of the change between two
    # seeds in that study, so that one more start moves the mean by less with 95 % odds. Re-run
    # on the study's records, this skips 194-208 of 328 second starts and changes no verdict
    # under any ordering of the three seeds (docs/bench/merging/NOTES.md).
    restart_margins: tuple[float, float, float, float] = (0.16, 0.12, 0.18, 0.23)
    # A trigger that works on more than this share of clean images through the base (or, for a
    # flagged scan's trigger, through another candidate) is shared, not planted, even when that
    # is less than half its success where it was found. In nine zoos' records, flagged scans'
    # triggers on their true targets reached at most 0.09 anywhere else, natural ones at least
    # 0.43 through the base (docs/bench/merging/NOTES.md).
    shared_success: float = 0.25
    scan_safe_merge: bool = True  # scan the merge without the blocked candidates (the benchmark skips it)

    def scan_config(self) -> ScanConfig:
        return ScanConfig(budget=self.budget, seed=self.seed, fail_on=self.fail_on, clean_data=None,
                          clean_budget=self.clean_budget, detectors=self.detectors, calibration=self.calibration)

    def variant_config(self) -> ScanConfig:
        return ScanConfig(budget=self.budget, seed=self.seed, fail_on=self.fail_on, clean_data=None,
                          clean_budget=self.clean_budget, detectors=self.detectors or list(self.variant_detectors),
                          calibration=self.variant_calibration_path())

    def variant_calibration_path(self) -> str:
        return self.variant_calibration or str(resources.files("modelscan_bd").joinpath("calibration",
                                                                                        "merging.json"))

    def to_dict(self) -> dict[str, Any]:
        return {"clean_data": self.clean_data, "clean_budget": self.clean_budget, "budget": self.budget,
                "seed": self.seed, "fail_on": self.fail_on, "amplify": list(self.amplify),
                "trim_density": self.trim_density, "z_threshold": self.z_threshold,
                "outlier_share": self.outlier_share, "leave_one_out": self.leave_one_out,
                "detectors": self.detectors or [], "variant_detectors": list(self.variant_detectors),
                "variant_calibration": load_calibration(self.variant_calibration_path()).describe(),
                "min_relative_accuracy": self.min_relative_accuracy, "attribution_drop": self.attribution_drop,
                "planted_log_ratio": round(self.planted_log_ratio, 4),
                "specific_log_ratio": self.specific_log_ratio, "peer_transfer": self.peer_transfer,
                "candidate_restarts": self.candidate_restarts, "restart_margins": list(self.restart_margins),
                "shared_success": self.shared_success}


@dataclass
class Member:
    """One model of the merge, resolved and loaded like ``scan`` does."""

    source: str
    snapshot: Snapshot
    adapter: ClassifierAdapter
    safety: list[Finding] = field(default_factory=list)

    @property
    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.adapter.model.net.state_dict().items()}


@dataclass
class GateOutcome:
    report: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return int(self.report["exit_code"])

    def blocked(self) -> list[str]:
        return [c["source"] for c in self.report["candidates"] if c["verdict"] == "block"]


def load_member(source: str, progress: Progress) -> Member:
    """Resolve, safety-check, identify and load one model (the steps of ``scan``)."""
    from .adapters.load_classifier import load_classifier

    progress(f"resolving {source}")
    snapshot = resolve(source, progress)
    findings = safety.check_snapshot(snapshot)
    family = identify(snapshot)
    if family.name != "classifier":
        raise UnsupportedModelError(f"{source}: {family.reason}; the merge gate supports image classifiers only")
    if not snapshot.files_of("safetensors"):
        raise UnsupportedModelError(f"{source}: no safetensors weights (pickle-based weights are never loaded)")
    adapter = load_classifier(snapshot, family)
    return Member(source, snapshot, adapter, findings)


def check_members(base: Member, candidates: list[Member]) -> None:
    """Every candidate must be the base's architecture with the same tensor shapes."""
    for c in candidates:
        if c.adapter.architecture != base.adapter.architecture:
            raise InputError(f"candidate {c.source} is a {c.adapter.architecture}, the base {base.source} is a "
                             f"{base.adapter.architecture}: models of different architectures cannot be merged")
        try:
            check_compatible(base.adapter.model.net.state_dict(), c.adapter.model.net.state_dict(),
                             f"candidate {c.source}")
        except ValueError as exc:
            raise InputError(f"{exc} ({base.source})") from None


def with_state(template: ClassifierAdapter, state: dict[str, torch.Tensor], name: str) -> ClassifierAdapter:
    """A copy of ``template`` carrying other weights of the same architecture."""
    adapter = copy.deepcopy(template)
    adapter.model.net.load_state_dict(state)
    adapter.model.eval()
    adapter.architecture = f"{template.architecture} ({name})"
    return adapter


def scan_summary(report: dict[str, Any], context=None, adapter: ClassifierAdapter | None = None,
                 clean: CleanData | None = None) -> dict[str, Any]:
    """What the gate keeps of one scan: the verdict, the combiner's features (so a verdict
    can be re-scored under another calibration), the clean accuracy, and the recovered
    trigger (its tensors under ``_trigger``, used for attribution, never written to reports)."""
    v = report["verdict"]
    out = {"status": v["status"], "probability": v["probability"], "summary": v["summary"],
           "suspected_targets": [t["label"] for t in v["suspected_targets"]],
           "incomplete_reasons": list(v["incomplete_reasons"]), "seconds": report["timing"]["total_seconds"]}
    if context is not None:
        out["features"] = {k: None if x is None else round(float(x), 6)
                           for k, x in extract_features(context.results).items()}
        trig = context.results.get("trigger-recovery")
        if trig:
            out["trigger"] = {"label": int(trig["label"]), "shape": trig["shape"], "size": round(trig["size"], 5),
                              "holdout_success": round(float(trig["holdout_success"] or 0.0), 4)}
            out["_trigger"] = {"mask": trig["mask"].tolist(), "pattern": trig["pattern"].tolist()}
    if adapter is not None and clean is not None:
        out["clean_accuracy"] = round(clean_accuracy(adapter, clean), 4)
    return out


@torch.no_grad()
def clean_accuracy(adapter: ClassifierAdapter, clean: CleanData) -> float:
    return float((adapter.predict(clean.images) == clean.labels).float().mean())


def rescore(summary: dict[str, Any], calibration, num_classes: int, architecture: str | None = None) -> dict[str, Any]:
    """The verdict of a scan under ``calibration``, from its recorded features, with the cuts
    it keeps for ``num_classes`` classes and ``architecture`` (``Calibration.cuts_for``), as the scan
    itself does."""
    if "features" not in summary:
        return summary
    p, _ = probability(summary["features"], calibration, num_classes, architecture)
    incomplete = summary["status"] == "INCOMPLETE" or bool(summary["incomplete_reasons"])
    status = status_for(p, calibration, incomplete, num_classes, architecture)
    where = f"; suspected target {summary['trigger']['label']}" if status in ("BACKDOORED", "SUSPICIOUS") and \
        summary.get("trigger") else ""
    return {**summary, "status": status, "probability": round(p, 4),
            "summary": summary_for(status, p, where, summary["incomplete_reasons"]),
            "suspected_targets": [summary["trigger"]["label"]] if where else []}


def _usable(summary: dict[str, Any], base_accuracy: float | None, share: float) -> bool:
    """A weight-space variant or merge is evidence only when every detector read it and it
    still classifies clean images (amplified or merged weights can break a model; its
    collapse then means nothing)."""
    if summary["status"] == "INCOMPLETE" or summary["incomplete_reasons"]:
        return False
    acc = summary.get("clean_accuracy")
    return acc is None or base_accuracy is None or acc >= share * base_accuracy


def differential_trigger(model: ClassifierAdapter, base: ClassifierAdapter, clean: CleanData, budget: str,
                         seed: int) -> dict[str, Any] | None:
    """A trigger of ``model`` (a candidate or the merge) inverted *against the base*: for
    every label, the smallest patch (and blend) that sends clean images to it through
    ``model`` while the base keeps their true labels (``inversion.invert`` with the base as
    reference). A backdoor the fine-tunes planted, BadMerging's (Zhang et al., CCS 2024)
    included, needs a small trigger there; a natural adversarial patch of the shared base is
    penalised, so every other label needs a large one. The label is scored like Neural
    Cleanse scores its labels (Wang et al., IEEE S&P 2019): the others' median trigger size
    over its own, on a log scale, per shape.

    It inverts every label, where a scan's trigger recovery inverts only the candidate labels
    that exposure and MM-BD name, and its reference is the model the candidates came from."""
    from .detectors.trigger import SETTINGS
    from .inversion import BLEND, PATCH, Slot, invert

    if len(clean.exposure_idx) < 4 or len(clean.holdout_idx) < 4:
        return None
    started = time.perf_counter()
    settings, _ = SETTINGS[budget]
    slots = [Slot(k, shape) for k in range(model.num_classes) for shape in (PATCH, BLEND)]
    g = torch.Generator().manual_seed(seed)
    inverted = invert(model.model, clean.exposure_images, clean.exposure_labels, slots, settings, g,
                      reference=base.model)
    best = None
    for trig in inverted:
        others = [o.effective_size() for o in inverted if o.slot.shape == trig.slot.shape and o is not trig]
        ratio = math.log(max(statistics.median(others), 1e-4) / max(trig.effective_size(), 1e-4))
        if best is None or ratio > best[0]:
            best = (ratio, trig)
    ratio, trig = best
    return {"label": int(trig.slot.target), "shape": trig.slot.shape, "size": round(trig.effective_size(), 5),
            "log_ratio": round(ratio, 4), "seconds": round(time.perf_counter() - started, 2),
            "_trigger": {"mask": trig.mask.tolist(), "pattern": trig.pattern.tolist()}}


def measure_start(found: dict[str, Any], model: ClassifierAdapter, base: ClassifierAdapter,
                  peers: dict[str, ClassifierAdapter], clean: CleanData) -> dict[str, Any]:
    """One start of a candidate's trigger inverted against the base, with its success through
    the candidate, the base and each peer (forward passes)."""
    trig, label = found["_trigger"], found["label"]
    return {**{k: v for k, v in found.items() if not k.startswith("_")},
            "on_model": round(trigger_success(model, trig, label, clean), 4),
            "on_base": round(trigger_success(base, trig, label, clean), 4),
            "on_peers": success_through(peers, trig, label, clean)}


def _starts_mean(starts: list[dict[str, Any]]) -> tuple[float, float, float, dict[str, float]]:
    """The starts' mean log ratio, mean success through the candidate and the base, and each
    peer's largest success from any start."""
    def mean(key: str) -> float:
        return sum(s[key] for s in starts) / len(starts)

    return (mean("log_ratio"), mean("on_model"), mean("on_base"),
            {p: max(s["on_peers"][p] for s in starts) for p in starts[0]["on_peers"]})


def _planted_specific(log_ratio: float, on_model: float, on_base: float, peer_max: float | None,
                      opt: GateOptions, success_needed: float) -> tuple[bool, bool]:
    """The planted and specific tests on one set of numbers (``candidate_trigger``)."""
    works = on_model >= success_needed and not _shares(on_base, on_model, opt.attribution_drop, opt.shared_success)
    return (bool(works and log_ratio >= opt.planted_log_ratio),
            bool(works and log_ratio >= opt.specific_log_ratio and peer_max is not None
                 and peer_max <= opt.peer_transfer))


def candidate_trigger(starts: list[dict[str, Any]], opt: GateOptions, success_needed: float) -> dict[str, Any]:
    """The planted and specific tests on a candidate's trigger inverted against the base from
    several starts (``measure_start``). A label whose trigger works through the candidate (the
    calibration's success threshold) and not through the base (the merge-specific cut) was
    planted by the fine-tune when it is far smaller than the other labels' (``planted_log_ratio``),
    or somewhat smaller and shared by no peer candidate (``specific_log_ratio``, ``peer_transfer``).
    The tests read each start's best trigger: their mean log ratio and success through the
    candidate and the base, and each peer's largest success. A planted trigger transfers to no
    peer from any start; a natural patch's numbers scatter from start to start, and one start's
    verdict moved with its seed (``GateOptions.candidate_restarts``). A start that misses the
    planted label (seed 5's BadMerging candidate: label 4 twice in three, label 0 once) still
    counts the others' at their share; the report names the strongest start's label."""
    best = max(starts, key=lambda s: s["log_ratio"])
    log_ratio, on_model, on_base, peers = _starts_mean(starts)
    planted, specific = _planted_specific(log_ratio, on_model, on_base, max(peers.values(), default=None), opt,
                                          success_needed)
    return {"label": best["label"], "shape": best["shape"], "size": best["size"], "log_ratio": round(log_ratio, 4),
            "seconds": round(sum(s["seconds"] for s in starts), 2), "on_model": round(on_model, 4),
            "on_base": round(on_base, 4), "on_peers": peers,
            "labels_agree": all(s["label"] == best["label"] for s in starts), "planted": planted,
            "specific": specific,
            "starts": [{k: s[k] for k in ("label", "shape", "size", "log_ratio", "on_model", "on_base", "on_peers")}
                       for s in starts]}


def settled(starts: list[dict[str, Any]], opt: GateOptions, success_needed: float) -> bool:
    """Whether the candidate-trigger verdict of these starts is out of one more start's reach:
    the tests give the same answer with every number moved by ``GateOptions.restart_margins``
    towards flagging as moved away from it (each test only grows with the log ratio and the
    success through the candidate, and shrinks with the success through the base and the peers)."""
    log_ratio, on_model, on_base, peers = _starts_mean(starts)
    peer_max = max(peers.values(), default=None)
    a, m, b, c = opt.restart_margins

    def flags(sign: int) -> bool:
        moved = None if peer_max is None else peer_max - sign * c
        return any(_planted_specific(log_ratio + sign * a, on_model + sign * m, on_base - sign * b, moved, opt,
                                     success_needed))

    return flags(1) == flags(-1)


def base_check(model: ClassifierAdapter, summary: dict[str, Any], base: ClassifierAdapter,
               clean: CleanData | None, drop: float, peers: dict[str, ClassifierAdapter] | None = None,
               shared_success: float = 1.0) -> dict[str, Any] | None:
    """Whether a scan's recovered trigger works elsewhere too: ``natural`` when its success
    through the base, or through another candidate (``peers``), is more than ``1 - drop`` of
    its success through ``model`` (the merge-specific test's cut, seen from the other side) or
    more than ``shared_success`` of the images. Fine-tunes of one base inherit its natural
    patches; a planted trigger works through nothing else."""
    if clean is None or not summary.get("_trigger"):
        return None
    label = summary["trigger"]["label"]
    on_model, on_base, _ = through_model_and_base(model, base, summary["_trigger"], label, clean, drop)
    on_peers = success_through(peers or {}, summary["_trigger"], label, clean)
    elsewhere = max([on_base, *on_peers.values()])
    return {"label": label, "on_model": round(on_model, 4), "on_base": round(on_base, 4), "on_peers": on_peers,
            "natural": bool(on_model > 0 and _shares(elsewhere, on_model, drop, shared_success))}


def _shares(elsewhere: float, here: float, drop: float, cap: float) -> bool:
    """A trigger that works ``here`` at this success is shared by a model where it works at
    ``elsewhere``: more than ``1 - drop`` as well, or on more than ``cap`` of the images."""
    return elsewhere > min((1 - drop) * here, cap)


def through_model_and_base(model: ClassifierAdapter, base: ClassifierAdapter, trigger: dict[str, Any], label: int,
                           clean: CleanData, drop: float, cap: float = 1.0) -> tuple[float, float, bool]:
    """A trigger's success through ``model`` and through the base, and whether the base
    shares it: more than ``1 - drop`` of its success through ``model``, or more than ``cap``
    of the images. The one cut behind the base check, candidate triggers (``candidate_trigger``
    applies it to its starts' means) and the merge-specific test."""
    on_model = trigger_success(model, trigger, label, clean)
    on_base = trigger_success(base, trigger, label, clean)
    return on_model, on_base, _shares(on_base, on_model, drop, cap)


def success_through(models: dict[str, ClassifierAdapter], trigger: dict[str, Any], label: int,
                    clean: CleanData) -> dict[str, float]:
    """A trigger's success through each of several models (the other candidates), by name."""
    return {name: round(trigger_success(m, trigger, label, clean), 4) for name, m in models.items()}


# The trigger of a collapsed merge: nothing is added to the image.
NO_TRIGGER: dict[str, Any] = {"mask": [[0.0]], "pattern": [[0.0]]}


@torch.no_grad()
def collapse_label(adapter: ClassifierAdapter, clean: CleanData) -> int:
    """The label a model sends most held-out clean images to."""
    return int(torch.bincount(adapter.predict(clean.holdout_images)).argmax())


@torch.no_grad()
def trigger_success(adapter: ClassifierAdapter, trigger: dict[str, Any], label: int, clean: CleanData) -> float:
    """Share of held-out clean images (not of ``label``) that a recovered trigger sends to ``label``."""
    mask = torch.tensor(trigger["mask"], dtype=torch.float32)
    pattern = torch.tensor(trigger["pattern"], dtype=torch.float32)
    x, y = clean.holdout_images, clean.holdout_labels
    keep = y != label
    if not keep.any():
        return 0.0
    pred = adapter.predict((1 - mask) * x[keep] + mask * pattern)
    return float((pred == label).float().mean())


def _level(summary: dict[str, Any]) -> int:
    return FLAG_LEVEL.get(summary["status"], 0)


def _readable_level(summary: dict[str, Any]) -> int:
    """The flag level of a scan every detector could read; 0 otherwise (its verdict then
    rests on filled-in features, e.g. when a merge's logits overflow MM-BD)."""
    return 0 if summary["status"] == "INCOMPLETE" or summary["incomplete_reasons"] else _level(summary)


def _p(summary: dict[str, Any]) -> float:
    return float(summary["probability"] or 0.0)


# ---- weight space ------------------------------------------------------------------

def _layers(base: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Trainable tensors grouped by module; BatchNorm running statistics are left out
    (they follow each task's input statistics and would drown the signal)."""
    groups: dict[str, list[str]] = {}
    for k, v in base.items():
        if not torch.is_floating_point(v) or k.endswith(("running_mean", "running_var")):
            continue
        groups.setdefault(k.rsplit(".", 1)[0] if "." in k else k, []).append(k)
    return groups


def robust_z(values: torch.Tensor) -> torch.Tensor:
    """Modified z-scores (x - median) / (1.4826 MAD), with the MAD floored at 5 % of |median|."""
    med = values.median()
    mad = (values - med).abs().median() * MAD_SCALE
    scale = max(float(mad), REL_FLOOR * abs(float(med)), 1e-12)
    return (values - med) / scale


def weight_space(base: dict[str, torch.Tensor], taus: list[dict[str, torch.Tensor]], names: list[str],
                 threshold: float, outlier_share: float) -> list[dict[str, Any]]:
    """Per-candidate task-vector statistics relative to the peers (see module docstring)."""
    n = len(taus)
    if n < 3:
        return [{"status": "skipped", "reason": f"needs 3 or more candidates for median/MAD statistics, got {n}",
                 "outlier": False, "score": 0.0} for _ in names]
    layers = _layers(base)
    norms = torch.zeros(n, len(layers))
    cosines = torch.zeros(n, len(layers))
    for j, keys in enumerate(layers.values()):
        vecs = torch.stack([torch.cat([t[k].flatten() for k in keys]) for t in taus])
        total = vecs.sum(0)
        norms[:, j] = vecs.norm(dim=1)
        for i in range(n):
            peers = total - vecs[i]
            denom = float(vecs[i].norm() * peers.norm())
            cosines[i, j] = float(vecs[i] @ peers) / denom if denom > 0 else 0.0
    z_norm = torch.stack([robust_z(norms[:, j]) for j in range(len(layers))], 1)
    # Low agreement with the peers' direction is the anomaly; high agreement is not.
    z_dir = -torch.stack([robust_z(cosines[:, j]) for j in range(len(layers))], 1)
    total_norm = norms.pow(2).sum(1).sqrt()
    z_total = robust_z(total_norm)
    names_l = list(layers)
    out = []
    for i in range(n):
        # One-sided: a backdoor adds to a task vector and turns it away from its peers;
        # a smaller or more typical task vector is no evidence.
        beyond = (z_norm[i] > threshold) | (z_dir[i] > threshold)
        share = float(beyond.float().mean())
        worst = sorted(range(len(layers)), key=lambda j: -max(float(z_norm[i, j]), float(z_dir[i, j])))[:5]
        outlier = share >= outlier_share or float(z_total[i]) > threshold
        out.append({"status": "done", "outlier": bool(outlier), "score": round(share, 4),
                    "layers": len(layers), "layers_beyond_threshold": int(beyond.sum()),
                    "total_norm": round(float(total_norm[i]), 6), "total_norm_z": round(float(z_total[i]), 3),
                    "mean_cosine_to_peers": round(float(cosines[i].mean()), 4),
                    "top_layers": [{"layer": names_l[j], "norm": round(float(norms[i, j]), 6),
                                    "norm_z": round(float(z_norm[i, j]), 3),
                                    "cosine_to_peers": round(float(cosines[i, j]), 4),
                                    "direction_z": round(float(z_dir[i, j]), 3)} for j in worst]})
    return out


# ---- the gate ----------------------------------------------------------------------

def run_gate(config: GateConfig, options: GateOptions | None = None, progress: Progress = lambda m: None,
             clean: CleanData | None = None, cache: dict | None = None) -> GateOutcome:
    """Resolve every model, check them and the simulated merge; the report is the gate's JSON.

    cache: optional dict reused across gate runs (the benchmark) for the scans that do not
    depend on the peers (base, own scans, task-vector exposures), keyed by weights SHA.
    """
    options = options or GateOptions()
    with PeakMemory() as memory:
        report = _run(config, options, progress, clean, {} if cache is None else cache)
    report["timing"]["peak_memory_mb"] = round(memory.peak_mb, 1)
    return GateOutcome(report)


def _run(config: GateConfig, opt: GateOptions, progress: Progress, clean: CleanData | None,
         cache: dict) -> dict[str, Any]:
    from .cleandata import load_clean_data

    timer = Timer()
    t = timer.start
    base = load_member(config.base, progress)
    members = [load_member(c, progress) for c in config.candidates]
    check_members(base, members)
    t = timer.step("load", t)
    if clean is None and opt.clean_data:
        progress(f"loading clean data from {opt.clean_data}")
        clean = load_clean_data(opt.clean_data, base.adapter, budget=opt.clean_budget, seed=opt.seed)
    scfg, vcfg = opt.scan_config(), opt.variant_config()
    vcal = load_calibration(vcfg.calibration)
    settings = json.dumps([opt.budget, opt.seed, opt.clean_budget, opt.clean_data, opt.detectors or [],
                           list(opt.variant_detectors)])

    def cached(key: tuple, make: Callable[[], ClassifierAdapter], name: str, variant: bool = False) -> dict[str, Any]:
        """Scans that do not depend on the peers (base, own scans, variants) or repeat
        (the same merge) run once per gate run, or once per benchmark (``cache``)."""
        k = json.dumps([*key, settings])
        if k not in cache:
            progress(f"scanning {name}")
            adapter = make()
            outcome = scan_classifier(adapter, clean, vcfg if variant else scfg, name=name)
            cache[k] = scan_summary(outcome.report, outcome.context, adapter, clean)
        summary = copy.deepcopy(cache[k])
        return rescore(summary, vcal, base.adapter.num_classes, base.adapter.architecture) if variant else summary

    base_state = base.state
    states = [m.state for m in members]
    taus = [task_vector(base_state, s) for s in states]
    bkey = _identity(base)
    base_scan = cached(("base", bkey), lambda: base.adapter, f"base {base.source}")
    base_acc = base_scan.get("clean_accuracy")
    t = timer.step("base", t)

    candidates = []
    for m in members:
        own = cached(("own", bkey, _identity(m)), lambda m=m: m.adapter, m.source)
        candidates.append({"source": m.source, "target": m.snapshot.to_dict(), "scan": own, "exposures": [],
                           "safety": [f.to_dict() for f in m.safety]})
    t = timer.step("candidates", t)
    for m, tau, c in zip(members, taus, candidates):
        mkey = (bkey, _identity(m))
        for lam in opt.amplify:
            s = cached(("amplify", *mkey, lam),
                       lambda lam=lam, tau=tau: with_state(base.adapter, scaled(base_state, tau, lam),
                                                           f"base + {lam} x task vector"),
                       f"{m.source} amplified x{lam}", variant=True)
            c["exposures"].append({"kind": "amplify", "lambda": lam, "density": 1.0, **s})
        if opt.trim_density < 1:
            s = cached(("trim", *mkey, opt.trim_density),
                       lambda tau=tau: with_state(base.adapter, scaled(base_state, tau, 1.0, opt.trim_density),
                                                  "base + trimmed task vector"),
                       f"{m.source} trimmed to {opt.trim_density}", variant=True)
            c["exposures"].append({"kind": "trim", "lambda": 1.0, "density": opt.trim_density, **s})
        for e in c["exposures"]:
            e["usable"] = _usable(e, base_acc, opt.min_relative_accuracy)
    t = timer.step("variants", t)
    success_needed = vcal.detectors.get("trigger", {}).get("holdout_success_threshold", 0.8)
    ratio_needed = vcal.detectors.get("trigger", {}).get("log_ratio_threshold", math.log(2.5))

    def against_base(key: tuple, model: ClassifierAdapter, restart: int = 0) -> dict[str, Any] | None:
        """``differential_trigger`` of ``model`` from start ``restart`` (seed + restart), cached like a scan."""
        k = json.dumps(["differential", *key, settings, *([restart] if restart else [])])
        if k not in cache:
            progress("inverting a trigger against the base")
            cache[k] = differential_trigger(model, base.adapter, clean, opt.budget, opt.seed + restart)
        return cache[k]

    def peers_of(i: int) -> dict[str, ClassifierAdapter]:
        """The other candidates, by their names in the config."""
        return {config.candidates[j]: p.adapter for j, p in enumerate(members) if j != i}

    # Each candidate's trigger inverted against the base (``candidate_trigger``; the inversions
    # are cached, the rest is forward passes).
    for i, (m, c) in enumerate(zip(members, candidates)):
        measured = []
        for r in range(opt.candidate_restarts if clean is not None else 0):
            found = against_base(("own", bkey, _identity(m)), m.adapter, r)
            if found is None:
                break
            measured.append(measure_start(found, m.adapter, base.adapter, peers_of(i), clean))
            if settled(measured, opt, success_needed):
                break
        c["differential_trigger"] = candidate_trigger(measured, opt, success_needed) if measured else None
    t = timer.step("candidate_triggers", t)
    # A flagged scan's recovered trigger, tested on the base and the other candidates too
    # (forward passes only): one that sends images to its label through any of them more than
    # half as well, or on more than ``shared_success`` of them, is a feature of the shared base
    # (a natural patch the fine-tunes inherited), not something the candidate adds to the
    # merge, so it only warns (``_decide``).
    for i, (m, tau, c) in enumerate(zip(members, taus, candidates)):
        if _level(c["scan"]) == 2:
            c["scan"]["base_check"] = base_check(m.adapter, c["scan"], base.adapter, clean, opt.attribution_drop,
                                                 peers_of(i), opt.shared_success)
        for e in c["exposures"]:
            if e["usable"] and _level(e) == 2:
                variant = with_state(base.adapter, scaled(base_state, tau, e["lambda"], e["density"]), "variant")
                e["base_check"] = base_check(variant, e, base.adapter, clean, opt.attribution_drop, peers_of(i),
                                             opt.shared_success)
    t = timer.step("base_check", t)
    for c, ws in zip(candidates, weight_space(base_state, taus, config.candidates, opt.z_threshold,
                                              opt.outlier_share)):
        c["weight_space"] = ws
    t = timer.step("weight_space", t)

    # DARE merges are judged on their expectation (see MergeSpec.expected); the sampled
    # merge is scanned too and can only add evidence.
    spec = config.spec.expected()

    def merged_state(keep: list[int], spec=spec) -> dict[str, torch.Tensor]:
        return merge_state_dicts(base_state, [states[i] for i in keep], spec.subset(keep), seed=opt.seed)

    def merge_key(keep: list[int], spec=spec) -> tuple:
        return ("merge", bkey, spec.method, spec.normalize, spec.rescale, spec.lam,
                [[_identity(members[i]), spec.weights[i], spec.densities[i]] for i in keep])

    def merge_scan(keep: list[int], name: str, spec=spec) -> dict[str, Any]:
        return cached(merge_key(keep, spec), lambda: with_state(base.adapter, merged_state(keep, spec), name), name,
                      variant=True)

    everyone = list(range(len(members)))
    merged = merge_scan(everyone, f"merge ({spec.method})" if spec is config.spec else
                        f"expected merge ({config.spec.method} as {spec.method}, densities 1)")
    merged["usable"] = _usable(merged, base_acc, opt.min_relative_accuracy)
    sampled = None
    if spec is not config.spec:
        sampled = merge_scan(everyone, f"merge ({config.spec.method}, seed {opt.seed})", config.spec)
        sampled["usable"] = _usable(sampled, base_acc, opt.min_relative_accuracy)
        merged["sampled_merge"] = sampled
    t = timer.step("merge", t)
    merge_adapter = with_state(base.adapter, merged_state(everyone), "merge")
    evidence = (merged["usable"] and _level(merged) > 0) or bool(sampled and sampled["usable"] and _level(sampled) > 0)

    def attempt(source: str, label: int, trig: dict) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
        """A merge trigger tested where it came from: one that works on the merge but not on
        the base was put there by the candidates (a natural adversarial patch of the shared
        base works on both); leave-one-out then asks which candidate it needs (forward
        passes only)."""
        with_all, on_base, shared = through_model_and_base(merge_adapter, base.adapter, trig, label, clean,
                                                           opt.attribution_drop, opt.shared_success)
        specific = with_all >= success_needed and not shared
        transfer = {"source": source, "label": label, "on_merge": round(with_all, 4), "on_base": round(on_base, 4),
                    "merge_specific": bool(specific)}
        loo: dict[int, dict[str, Any]] = {}
        if len(members) > 1 and (opt.leave_one_out == "always" or
                                 (opt.leave_one_out == "flagged" and (evidence or specific))):
            for i in everyone:
                progress(f"leave-one-out: merge without {config.candidates[i]}")
                without = trigger_success(with_state(base.adapter, merged_state([j for j in everyone if j != i]),
                                                     "loo"), trig, label, clean)
                alone = trigger_success(members[i].adapter, trig, label, clean)
                loo[i] = {"label": label, "success_with_all": transfer["on_merge"],
                          "success_without": round(without, 4), "success_alone": round(alone, 4),
                          "success_on_base": transfer["on_base"]}
        return transfer, loo

    def culprits(loo: dict[int, dict[str, Any]]) -> tuple[list[int], int | None]:
        """The candidates whose removal takes the merge trigger away, and, when that is exactly
        one, another candidate that carries the trigger by itself about as well (None if none)."""
        cleared = [i for i, r in loo.items() if _clears(r, opt.attribution_drop)]
        carrier = _carrier(loo, cleared[0], opt.attribution_drop, opt.shared_success) if len(cleared) == 1 else None
        return cleared, carrier

    def pinned(a: tuple[dict[str, Any], dict]) -> bool:
        """A merge-specific trigger that leaving out exactly one candidate takes away, and that
        no other candidate carries by itself."""
        cleared, carrier = culprits(a[1])
        return a[0]["merge_specific"] and len(cleared) == 1 and carrier is None

    # First the trigger the merge's own scan recovered. Its trigger recovery inverts only the
    # labels exposure and MM-BD name, so when that trigger is not pinned on a candidate, the
    # trigger inverted against the base (every label; cached like a scan) is tried too.
    attempts = []
    if clean is not None and not merged["usable"] and merged.get("clean_accuracy") is not None and len(members) > 1:
        # A merge that no longer classifies is scanned for nothing, but one that sends clean
        # images to a single label has the backdoor's signature without any trigger (the
        # collapse EBYD's exposure looks for, here caused by merging): tested as a trigger
        # that changes nothing, so leave-one-out asks which candidate the collapse needs.
        attempts.append(attempt("collapse", collapse_label(merge_adapter, clean), NO_TRIGGER))
    if clean is not None and merged["usable"]:
        if merged.get("_trigger"):
            attempts.append(attempt("scan", merged["trigger"]["label"], merged["_trigger"]))
        if not (attempts and pinned(attempts[0])):
            diff = against_base(merge_key(everyone), merge_adapter)
            merged["differential_trigger"] = diff and {key: v for key, v in diff.items() if not key.startswith("_")}
            if diff is not None and diff["log_ratio"] >= ratio_needed:
                attempts.append(attempt("differential", diff["label"], diff["_trigger"]))
    transfer, loo = next((a for a in attempts if pinned(a)), None) or \
        next((a for a in attempts if a[0]["merge_specific"]), None) or (attempts[0] if attempts else (None, {}))
    merged["trigger_transfer"] = transfer
    flagged = evidence or bool(transfer and transfer["merge_specific"]
                               and (merged["usable"] or transfer["source"] == "collapse"))
    t = timer.step("attribution", t)

    cleared, carrier = culprits(loo)
    for i, c in enumerate(candidates):
        c.update(_decide(c, merged, loo.get(i), flagged, ambiguous=len(cleared) > 1, drop=opt.attribution_drop,
                         carrier=None if carrier is None else (config.candidates[carrier],
                                                               loo[carrier]["success_alone"])))
    blocked = [i for i, c in enumerate(candidates) if c["verdict"] == "block"]
    safe = None
    if blocked and opt.scan_safe_merge:
        keep = [i for i in everyone if i not in blocked]
        if not keep:
            safe = {"status": "NONE", "summary": "every candidate is blocked: nothing is left to merge",
                    "probability": None, "suspected_targets": [], "incomplete_reasons": [], "seconds": 0.0,
                    "without": [config.candidates[i] for i in blocked]}
        else:
            safe = {**merge_scan(keep, "merge without blocked candidates"),
                    "without": [config.candidates[i] for i in blocked]}
    timer.step("safe_merge", t)
    merged_entry = {"method": config.spec.method, "judged_as": spec.method, **merged, "safe_merge": safe}
    findings = _findings(base, base_scan, candidates, merged_entry)
    report = {
        "schema_version": GATE_SCHEMA_VERSION,
        "kind": "merge-gate",
        "tool": {"name": "modelscan-bd", "version": __version__},
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": _environment(),
        "config": {"merge": config.to_dict(), "options": opt.to_dict(),
                   "clean_data": None if clean is None else clean.describe()},
        "base": {"source": base.source, "target": base.snapshot.to_dict(), "architecture": base.adapter.architecture,
                 "num_classes": base.adapter.num_classes, "scan": base_scan,
                 "safety": [f.to_dict() for f in base.safety]},
        "candidates": candidates,
        "merged": merged_entry,
        "findings": [f.to_dict() for f in findings],
        "timing": {"total_seconds": round(time.perf_counter() - timer.start, 3), "steps": timer.steps,
                   "peak_memory_mb": None},
    }
    report = _strip_private(report)
    report["exit_code"] = gate_exit_code(report, opt.fail_on)
    return report


def _strip_private(obj):
    """Drop ``_``-prefixed keys (trigger tensors) before the report is written."""
    if isinstance(obj, dict):
        return {k: _strip_private(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_strip_private(v) for v in obj]
    return obj


def _clears(loo: dict[str, Any], drop: float) -> bool:
    """Leaving this candidate out takes away at least ``drop`` of the merge trigger's success."""
    return loo["success_without"] <= (1 - drop) * loo["success_with_all"]


def _carrier(loo: dict[int, dict[str, Any]], i: int, drop: float, cap: float) -> int | None:
    """Another candidate that passes the merge trigger by itself on more than ``cap`` of the
    images and more than ``1 - drop`` as well as candidate ``i`` does. TIES merges of clean
    fine-tunes can amplify a weakness the fine-tunes share (blind seed 9: a label-8 patch through
    three clean candidates alone at 32-52 %); leaving one of them out then weakens it, but it is
    theirs in common, not one candidate's backdoor. A candidate's backdoor works through it alone
    (BadNets, Blended) or, designed to fire only after merging (BadMerging), through none
    (docs/bench/merging/NOTES.md). The floor keeps small numbers from deciding."""
    own = loo[i]["success_alone"]
    others = [(r["success_alone"], j) for j, r in loo.items() if j != i]
    best, j = max(others, default=(0.0, None))
    return j if best > max((1 - drop) * own, cap) else None


def _identity(m: Member) -> str:
    """What a cached scan is keyed by: the pinned commit, else the weights' hashes."""
    return m.snapshot.sha or ",".join(f.sha256 or f.path for f in m.snapshot.files_of("safetensors")) or m.source


def _natural(summary: dict[str, Any]) -> str:
    """Why a flagged scan's trigger is the base's own (empty when it is not)."""
    check = summary.get("base_check")
    if not check or not check["natural"]:
        return ""
    peers = check.get("on_peers") or {}
    peer = max(peers, key=peers.get) if peers else None
    also = f", through {peer} {peers[peer]:.0%}" if peer is not None else ""
    return (f"Its trigger (label {check['label']}) also works through the base ({check['on_base']:.0%}{also}; "
            f"{check['on_model']:.0%} here): a feature of the shared base, not one this candidate adds.")


def _decide(c: dict[str, Any], merged: dict[str, Any], loo: dict[str, Any] | None, flagged: bool,
            ambiguous: bool = False, drop: float = 0.5,
            carrier: tuple[str, float] | None = None) -> dict[str, Any]:
    """Verdict, severity, score and reasons for one candidate."""
    block, warn = [], []
    own = c["scan"]
    if _level(own) == 2 and _natural(own):
        warn.append(f"its own scan: {own['summary']} {_natural(own)}")
    elif _level(own) == 2:
        block.append(f"its own scan: {own['summary']}")
    elif _level(own) == 1:
        warn.append(f"its own scan: {own['summary']}")
    usable = [e for e in c["exposures"] if e.get("usable", True)]
    for e in usable:
        what = (f"amplified task vector (lambda={e['lambda']})" if e["kind"] == "amplify"
                else f"TIES-trimmed task vector (density={e['density']})")
        # Variants are judged by the merging calibration, fitted on such variants and merges
        # (calibration/merging.json); only a BACKDOORED verdict counts.
        if _level(e) == 2 and _natural(e):
            warn.append(f"{what}: {e['status']} (p={_p(e):.2f}). {_natural(e)}")
        elif _level(e) == 2:
            block.append(f"{what}: {e['status']} (p={_p(e):.2f})")
    planted = c.get("differential_trigger") or {}
    if planted.get("planted"):
        block.append(f"its trigger inverted against the base (label {planted['label']}, {planted['shape']}) is "
                     f"{math.exp(planted['log_ratio']):.1f}x smaller than the other labels' and sends "
                     f"{planted['on_model']:.0%} of clean images to that label through this candidate, "
                     f"{planted['on_base']:.0%} through the base")
    elif planted.get("specific"):
        block.append(f"its trigger inverted against the base (label {planted['label']}, {planted['shape']}) is "
                     f"{math.exp(planted['log_ratio']):.1f}x smaller than the other labels' and specific to it: "
                     f"{planted['on_model']:.0%} of clean images go to that label through this candidate, "
                     f"{planted['on_base']:.0%} through the base and at most "
                     f"{max(planted['on_peers'].values()):.0%} through any other candidate")
    for e in c["exposures"]:
        if not e.get("usable", True) and e.get("clean_accuracy") is not None and not e["incomplete_reasons"]:
            # Not backdoor evidence (the variant is broken), but a task vector that breaks the
            # model when scaled by 1.5 is unusually large or fragile: worth a look.
            warn.append(f"the {e['kind']} variant (lambda={e['lambda']}, density={e['density']}) no longer classifies clean images "
                        f"(accuracy {e['clean_accuracy']:.2f})")
    attribution = {"status": "not run", "score": 0.0, "attributed": False}
    if loo is not None:
        with_all = loo["success_with_all"]
        share = loo["success_without"] / with_all if with_all > 0 else 1.0
        clears = _clears(loo, drop)
        attributed = flagged and clears and not ambiguous and carrier is None
        transfer = merged.get("trigger_transfer") or {}
        specific = bool(transfer.get("merge_specific"))
        collapse = transfer.get("source") == "collapse"
        # Score: the merge's evidence (its probability, or how merge-specific its trigger is)
        # times the share of the trigger's success that leaves with this candidate.
        spec = (with_all - loo["success_on_base"]) / with_all if specific and with_all > 0 else 0.0
        score = max(_p(merged), spec) * max(0.0, 1.0 - share) if merged.get("usable", True) else 0.0
        if collapse:  # a collapse scores only the candidate it is pinned on: a broken merge is weaker evidence
            score = spec * max(0.0, 1.0 - share) if attributed else 0.0
        attribution = {"status": "done", "score": round(score, 4), "attributed": attributed,
                       "ambiguous": ambiguous, "carried_by": carrier[0] if carrier and clears else None, **loo}
        which = ("trigger inverted against the base" if transfer.get("source") == "differential"
                 else "recovered trigger")
        what = (f"the merge is {merged['status']} (p={_p(merged):.2f}); its {which} (label "
                f"{loo['label']}) sends {with_all:.0%} of clean images to that label through the merge, "
                f"{loo['success_on_base']:.0%} through the base, {loo['success_without']:.0%} through the merge "
                f"without this candidate")
        if collapse:
            what = (f"the merge collapses: it sends {with_all:.0%} of clean images of other labels to label "
                    f"{loo['label']} with no trigger (the base {loo['success_on_base']:.0%}, the merge without "
                    f"this candidate {loo['success_without']:.0%})")
        if flagged and clears and ambiguous:
            warn.append(f"{what}; leaving out another candidate also stops it: not attributable to one")
        elif flagged and clears and carrier is not None:
            # A collapse has no trigger to pass: the carrier sends images there by itself.
            passes = "sends images there with no trigger" if collapse else "passes it"
            warn.append(f"{what}; but {carrier[0]} alone {passes} on {carrier[1]:.0%} of clean images, this "
                        f"candidate alone on {loo['success_alone']:.0%}: a feature they share, not this one's")
        elif attributed and collapse and planted.get("label") != loo["label"]:
            # A candidate can break a merge without a backdoor (an outsized task vector); the
            # collapse blocks only when the candidate's own trigger, inverted against the
            # base, names the label the merge collapses onto.
            warn.append(what)
        elif attributed and collapse:
            block.append(f"{what}; its trigger inverted against the base names the same label")
        elif attributed and (_level(merged) == 2 or specific):
            block.append(what)
        elif attributed:
            warn.append(what)
    for f in c["safety"]:
        if f["status"] == "failed" and severity_rank(f["severity"]) >= severity_rank("high"):
            block.append(f"unsafe file: {f['message']}")
    ws = c["weight_space"]
    if ws.get("outlier"):
        warn.append(f"weight-space outlier: {ws['layers_beyond_threshold']}/{ws['layers']} layers beyond the "
                    f"robust z cut-off, total task-vector norm z={ws['total_norm_z']}")
    incomplete = list(own["incomplete_reasons"])
    if own["status"] == "INCOMPLETE" or incomplete:
        warn.append("not fully scanned: " + "; ".join(dict.fromkeys(incomplete))[:300])
    planted_score = (planted["on_model"] - planted["on_base"]) / planted["on_model"] if planted.get("planted") else 0.0
    if planted.get("specific") and not planted.get("planted"):
        elsewhere = max(planted["on_base"], *planted["on_peers"].values())
        planted_score = (planted["on_model"] - elsewhere) / planted["on_model"]
    score = max([_p(own), *(_p(e) for e in usable), attribution["score"], planted_score])
    verdict = "block" if block else "warn" if warn else "pass"
    severity = {"block": "critical" if score >= 0.97 else "high", "warn": "medium", "pass": "info"}[verdict]
    return {"verdict": verdict, "severity": severity, "score": round(score, 4), "reasons": block + warn,
            "attribution": attribution, "incomplete": bool(incomplete) or own["status"] == "INCOMPLETE"}


def _scan_severity(summary: dict[str, Any]) -> str:
    if not _readable_level(summary) or not summary.get("usable", True):
        return "info"  # CLEAN, not read by every detector (exit code 3), or a merge that no longer classifies
    p = _p(summary)
    return {"BACKDOORED": "critical" if p >= 0.97 else "high", "SUSPICIOUS": "medium"}.get(summary["status"], "info")


def _findings(base: Member, base_scan, candidates, merged) -> list[Finding]:
    out = []
    sev = _scan_severity(base_scan)
    out.append(Finding(rule_id="MSBD-G003", detector="gate", detector_version="1",
                       status="failed" if sev != "info" else "passed", severity=sev,
                       title="Base model scan", message=f"base {base.source}: {base_scan['summary']}",
                       score=base_scan["probability"], location=base.source))
    for c in candidates:
        msg = f"{c['source']}: {c['verdict']}" + (f" ({'; '.join(c['reasons'])})" if c["reasons"] else "")
        out.append(Finding(rule_id="MSBD-G001", detector="gate", detector_version="1",
                           status="passed" if c["verdict"] == "pass" else "failed", severity=c["severity"],
                           title="Merge candidate verdict", message=msg[:1000], score=c["score"],
                           evidence={"verdict": c["verdict"], "reasons": c["reasons"]}, location=c["source"]))
    sev = _scan_severity(merged)
    msg = f"merge ({merged['method']}): {merged['summary']}"
    tr = merged.get("trigger_transfer") or {}
    if tr.get("merge_specific") and tr["source"] == "collapse":
        sev = max(sev, "high", key=severity_rank)
        msg += (f" The merge collapses: it sends {tr['on_merge']:.0%} of clean images of other labels to label "
                f"{tr['label']} with no trigger ({tr['on_base']:.0%} through the base).")
    elif tr.get("merge_specific"):
        # A trigger the merge learned from its candidates (it does not work on the base).
        sev = max(sev, "high", key=severity_rank)
        msg += (f" Its recovered trigger (label {tr['label']}) sends {tr['on_merge']:.0%} of clean images to that "
                f"label through the merge and {tr['on_base']:.0%} through the base: a merge-specific trigger.")
    out.append(Finding(rule_id="MSBD-G002", detector="gate", detector_version="1",
                       status="failed" if sev != "info" else "passed", severity=sev,
                       title="Simulated merge scan", message=msg, score=merged["probability"],
                       evidence={"trigger_transfer": tr} if tr else {}))
    return out


def gate_exit_code(report: dict[str, Any], fail_on: str) -> int:
    """1: a candidate is blocked, or a finding (merge, base, warning) reaches --fail-on;
    3: something was not fully scanned; 0 otherwise."""
    if any(c["verdict"] == "block" for c in report["candidates"]):
        return EXIT_FINDINGS
    if any(f["status"] == "failed" and severity_rank(f["severity"]) >= severity_rank(fail_on)
           for f in report["findings"]):
        return EXIT_FINDINGS
    scans = [report["base"]["scan"], report["merged"]] + [c["scan"] for c in report["candidates"]]
    if any(c["incomplete"] for c in report["candidates"]) or any(
            s["status"] == "INCOMPLETE" or s["incomplete_reasons"] for s in scans):
        return EXIT_INCOMPLETE
    return EXIT_OK

