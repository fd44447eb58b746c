"""``modelscan-bd bench``: scan every model of a zoo, measure, compare with baselines.

Metrics: AUROC, TPR at 5 % FPR, log loss (TrojAI's cross-entropy), accuracy at the
calibrated threshold, target-label accuracy (all-to-one attacks), detection rate per
attack, trigger recovery (held-out success of the recovered trigger; IoU of its mask
with the true mask for patch attacks; for all-to-all models label-map's trigger and its
success on the true label map, ``recovered_trigger``), seconds and peak MB per model. Neural Cleanse
and EBYD's variance test run in the same process on the same clean data.

``--calibrate`` fits the verdict combiner on one split and reports on the other: the
held-out split is other training seeds AND whole attack families never seen in
fitting. Numbers on the fitting split are never reported. With ``--cuts-only`` the shipped
combiner is kept and only its cuts for the zoo's class count are fitted (``class_cuts_records``).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import platform
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from . import __version__
from .errors import InputError, UsageError
from .verdict import (FEATURES, REFERENCE_ALPHA, REFERENCES, Calibration, fit_architecture_combiner,
                      fit_architecture_cuts, fit_calibration, fit_class_cuts, load_calibration, probability,
                      shipped_calibration)

RESULTS_FILE = "results.json"


# Attack types with one target label, the models target-label accuracy counts.
TARGETED_TYPES = ("all-to-one", "clean-label", "source-specific")


def auroc(scores: list[float], labels: list[int]) -> float | None:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def tpr_at_fpr(scores: list[float], labels: list[int], max_fpr: float = 0.05) -> float | None:
    """Best TPR over thresholds whose FPR stays at or below ``max_fpr``."""
    pos = sorted(s for s, y in zip(scores, labels) if y)
    neg = sorted(s for s, y in zip(scores, labels) if not y)
    if not pos or not neg:
        return None
    best = 0.0
    for thr in sorted(set(scores)) + [math.inf]:
        fpr = sum(n >= thr for n in neg) / len(neg)
        if fpr <= max_fpr:
            best = max(best, sum(p >= thr for p in pos) / len(pos))
    return best


def log_loss(probs: list[float], labels: list[int]) -> float | None:
    if not probs:
        return None
    eps = 1e-6
    return -sum(y * math.log(max(p, eps)) + (1 - y) * math.log(max(1 - p, eps)) for p, y in zip(probs, labels)) / len(probs)


def mask_iou(recovered, true_mask: np.ndarray | None) -> float | None:
    """IoU of the recovered mask (top pixels, as many as the true trigger has) with the true one."""
    if recovered is None or true_mask is None:
        return None
    rec = np.asarray(recovered.detach().cpu().numpy() if hasattr(recovered, "detach") else recovered).reshape(-1)
    truth = (np.asarray(true_mask, dtype=float).reshape(-1) > 0.5)
    k = int(truth.sum())
    if k == 0 or rec.size != truth.size:
        return None
    top = np.zeros_like(truth)
    top[np.argsort(-rec, kind="stable")[:k]] = True
    return float((top & truth).sum() / (top | truth).sum())


def _true_mask(zoo: Path, entry: dict) -> np.ndarray | None:
    from PIL import Image

    truth = entry.get("truth") or {}
    name = truth.get("trigger_mask")
    if not name or truth.get("attack") not in ("badnets", "source_specific", "all_to_all", "label_consistent"):
        return None
    path = zoo / entry["truth_dir"] / name
    return np.asarray(Image.open(path).convert("L"), dtype=float) / 255.0 if path.exists() else None


def recovered_trigger(results: dict[str, Any], truth: dict[str, Any],
                      true_mask: np.ndarray | None) -> tuple[str | None, float | None, float | None]:
    """The detector whose trigger the bench scores, its held-out success and its mask's IoU with the
    true mask. An all-to-all model's trigger is label-map's, where it ran: success is the share of
    held-out images (classified right) that it sends to their own true destination (``target_map``),
    which a targeted trigger cannot reach. A source-specific model's is pair-trigger's kept pair (the
    highest-scoring refined one), where it ran (its success: on held-out images of that pair's source).
    Otherwise trigger-recovery's, on its candidate label."""
    lm = results.get("label-map") or {}
    if truth.get("type") == "all-to-all" and lm.get("pairs") is not None and truth.get("target_map"):
        dest = truth["target_map"]
        hits = sum(c for s, d, c in lm["pairs"] if 0 <= s < len(dest) and d == dest[s])
        return "label-map", hits / max(1, lm["images"]), mask_iou(lm.get("patch_mask"), true_mask)
    pair = results.get("pair-trigger") or {}
    if truth.get("type") == "source-specific" and pair.get("patch_mask") is not None:
        # success on held-out images of the pair's source: the only class the trigger is meant to move
        return "pair-trigger", pair.get("holdout_success"), mask_iou(pair["patch_mask"], true_mask)
    trig = results.get("trigger-recovery") or {}
    if not trig:
        return None, None, None
    return "trigger-recovery", trig.get("holdout_success"), mask_iou(trig.get("patch_mask"), true_mask)


def scan_zoo(zoo: Path, budget: str, seed: int, baselines: bool,
             progress: Callable[[str], None] = lambda m: None,
             known: dict[str, dict[str, Any]] | None = None, budget_fallback: bool = True) -> list[dict[str, Any]]:
    """Scan every model in the zoo's manifest; one record per model, in manifest order.
    ``known``: records of an earlier run by model name, reused instead of scanning again.
    ``budget_fallback``: as ``ScanConfig``'s (the baselines run at ``budget`` either way)."""
    from .baselines import ebyd_variance, neural_cleanse
    from .scan import ScanConfig, scan

    clean_data = str(zoo / "clean-data.npz")
    records: list[dict[str, Any]] = []
    for entry in entries_to_scan(zoo, records, known, progress):
        truth = read_truth(zoo, entry)
        entry = {**entry, "truth": truth}
        t = time.perf_counter()
        outcome = scan(str(zoo / entry["path"]), ScanConfig(budget=budget, seed=seed, clean_data=clean_data,
                                                            budget_fallback=budget_fallback))
        seconds = time.perf_counter() - t
        report = outcome.report
        results = outcome.context.results if outcome.context else {}
        trig = results.get("trigger-recovery") or {}
        trigger_from, success, iou = recovered_trigger(results, truth, _true_mask(zoo, entry))
        record = {
            "name": entry["name"], "arch": entry.get("arch"), "attack": truth.get("attack") or "clean",
            "type": truth.get("type"), "backdoored": bool(truth.get("backdoored")), "target": truth.get("target"),
            "hard": bool(entry.get("hard")), "seed": entry.get("seed"), "asr": truth.get("asr"),
            "clean_acc": truth.get("clean_acc"),
            "features": report["verdict"].get("features") or {},
            "suspected": [t["label"] for t in report["verdict"]["suspected_targets"]],
            "candidate": trig.get("label"), "trigger_success": success, "trigger_iou": iou,
            "trigger_from": trigger_from, "num_classes": outcome.adapter.num_classes if outcome.adapter else None,
            "architecture": outcome.adapter.architecture if outcome.adapter else None,
            "signal_label": (results.get("signal-trigger") or {}).get("label"),
            "warp_label": (results.get("warp-trigger") or {}).get("label"),
            "feature_label": (results.get("feature-trigger") or {}).get("label"),
            "pair_label": (results.get("pair-trigger") or {}).get("label"),
            "pair_source": (results.get("pair-trigger") or {}).get("source"),
            # never used by the target rule while trigger recovery names a label; kept to replay refinements
            "collapse_label": (results.get("exposure-collapse") or {}).get("label"),
            "mmbd_label": (results.get("mmbd") or {}).get("target"),
            "trigger_starts": trig.get("starts"),  # 2: the first inversion start found nothing
            "trigger_promoted": trig.get("promoted"),  # a swept label scored too (NC's index and the trigger bar)
            "budget": report["config"]["budget"],  # the one that ran (a budget fallback may change it)
            "seconds": round(seconds, 2), "peak_mb": report["timing"]["peak_memory_mb"],
            "steps": report["timing"]["steps"],
        }
        if baselines and outcome.adapter is not None and outcome.context.clean is not None:
            for name, fn in (("neural_cleanse", neural_cleanse), ("ebyd_variance", ebyd_variance)):
                record[name] = fn(outcome.adapter, outcome.context.clean, seed, budget)
                record[name].pop("sizes", None)
        records.append(record)
    return records


def _read_text(path: Path, what: str) -> str:
    """A file the bench reads; a missing or unreadable one is a one-line input error naming ``what`` it is."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable {what} {path}: {exc}") from None


def read_json(path: Path, what: str) -> Any:
    """A JSON file the bench reads (zoo manifest, ground truth, earlier results); a missing or
    unreadable one is a one-line input error naming ``what`` it is."""
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"unreadable {what} {path}: {exc}") from None


def read_jsonl(path: Path, what: str) -> list[dict[str, Any]]:
    """A JSON-lines file the bench reads (one JSON object per line); a missing file, or a line
    that is not a JSON object, is a one-line input error naming the file and the line."""
    rows = []
    for number, line in enumerate(_read_text(path, what).splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"unreadable {what} {path}, line {number}: {exc}") from None
        if not isinstance(row, dict):
            raise InputError(f"unreadable {what} {path}, line {number}: not a JSON object")
        rows.append(row)
    return rows


def read_manifest(zoo: Path) -> dict[str, Any]:
    """The zoo's ``manifest.json``, checked to list its models."""
    manifest = read_json(zoo / "manifest.json", "zoo file (zoos come from `modelscan-bd zoo build`)")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list):
        raise InputError(f"unreadable zoo file {zoo / 'manifest.json'}: no list of models")
    return manifest


def read_truth(zoo: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """A zoo model's ``groundtruth.json``."""
    return read_json(zoo / entry["truth_dir"] / "groundtruth.json", "zoo file")


def entries_to_scan(zoo: Path, records: list[dict], known: dict[str, dict] | None,
                    progress: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """The zoo manifest's entries, in order, that still need a scan. Models with a record in
    ``known`` (an earlier run's, by name) are not scanned again: their record goes straight
    into ``records``, so the records stay in manifest order. Every family's zoo scan loops here."""
    models = read_manifest(zoo)["models"]
    for i, entry in enumerate(models):
        if known and entry["name"] in known:
            records.append(known[entry["name"]])
            continue
        progress(f"[{i + 1}/{len(models)}] {entry['name']}")
        yield entry


def split(records: list[dict], holdout_attacks: list[str], holdout_seeds: list[int],
          budget: str | None = None) -> tuple[list, list]:
    """Fit on some seeds and attacks; evaluate on other seeds plus entirely unseen attack
    families. Hard clean models are always evaluated, never fitted on; so are scans that ran at
    another budget than ``budget`` (a budget fallback: that budget's file judges them)."""
    fit, held = [], []
    for r in records:
        unseen = (r["attack"] in holdout_attacks or r.get("seed") in holdout_seeds or r["hard"]
                  or not ran_at(r, budget))
        (held if unseen else fit).append(r)
    return fit, held


def calibrate(records: list[dict], version: str, description: str, budget: str | None = None,
              other_clean: list[dict] | None = None) -> Calibration:
    return fit_calibration([r["features"] for r in records], [int(r["backdoored"]) for r in records], FEATURES,
                           version=version, description=description, detectors=load_calibration().detectors,
                           budget=budget, references=REFERENCES, alpha=REFERENCE_ALPHA,
                           other_recipes_clean=[r["features"] for r in other_clean or []])


def metrics(records: list[dict], cal: Calibration, num_classes: int | None = None) -> dict[str, Any]:
    """num_classes: the zoo's class count, which picks the calibration's combiner and cuts
    (``Calibration.cuts_for``); a record's own ``num_classes`` wins (pooled zoos of several counts)."""
    labels = [int(r["backdoored"]) for r in records]
    judges = [judge_for(r, cal) for r in records]
    probs = [model_probability(r, c, num_classes) for r, c in zip(records, judges)]
    flagged = [p >= c.cuts_for(record_classes(r, num_classes), record_architecture(r))[0]
               for p, r, c in zip(probs, records, judges)]
    out: dict[str, Any] = {
        "models": len(records), "backdoored": sum(labels), "clean": len(labels) - sum(labels),
        "auroc": auroc(probs, labels), "tpr_at_5fpr": tpr_at_fpr(probs, labels), "log_loss": log_loss(probs, labels),
        "accuracy": sum(f == bool(y) for f, y in zip(flagged, labels)) / max(1, len(labels)),
        "fpr": _rate([f for f, y in zip(flagged, labels) if not y]),
        "tpr": _rate([f for f, y in zip(flagged, labels) if y]),
    }
    a2o = [(r, c) for r, c in zip(records, judges) if r["backdoored"] and r["type"] in TARGETED_TYPES]
    out["target_accuracy"] = _rate([reported_target(r, c) == r["target"] for r, c in a2o])
    out["per_attack"] = {}
    for attack in sorted({r["attack"] for r in records}):
        rs = [(p, f, r) for p, f, r in zip(probs, flagged, records) if r["attack"] == attack]
        clean_p = [p for p, r in zip(probs, records) if not r["backdoored"] and not r["hard"]]
        attack_p = [p for p, _, _ in rs]
        out["per_attack"][attack] = {
            "models": len(rs), "detection_rate": _rate([f for _, f, _ in rs]),
            "auroc_vs_clean": auroc(attack_p + clean_p, [1] * len(attack_p) + [0] * len(clean_p)) if attack != "clean" else None,
            "trigger_success": _mean([r.get("trigger_success") for _, _, r in rs if r["backdoored"]]),
            "trigger_iou": _mean([r.get("trigger_iou") for _, _, r in rs]),
        }
    hard = [f for f, r in zip(flagged, records) if r["hard"]]
    out["hard_clean_fpr"] = _rate(hard)
    out["seconds_per_model"] = _mean([r["seconds"] for r in records])
    out["peak_mb_max"] = max((r["peak_mb"] or 0 for r in records), default=None)
    for base in ("neural_cleanse", "ebyd_variance"):
        rs = [r for r in records if base in r]
        if rs:
            scores = [r[base]["score"] for r in rs]
            lab = [int(r["backdoored"]) for r in rs]
            out[base] = {"auroc": auroc(scores, lab), "tpr_at_5fpr": tpr_at_fpr(scores, lab),
                         "tpr": _rate([r[base]["flagged"] for r in rs if r["backdoored"]]),
                         "fpr": _rate([r[base]["flagged"] for r in rs if not r["backdoored"]]),
                         "target_accuracy": _rate([r[base]["target"] == r["target"] for r in rs
                                                   if r["backdoored"] and r["target"] is not None]),
                         "seconds_per_model": _mean([r[base]["seconds"] for r in rs])}
    return out


def ran_at(record: dict[str, Any], budget: str | None) -> bool:
    """Whether a bench record's scan ran at ``budget`` and not at another through a budget fallback
    (``Calibration.budget_fallbacks``); records before 2026-12-06 name no budget and ran at their run's."""
    return budget is None or record.get("budget", budget) == budget


def judge_for(record: dict[str, Any], cal: Calibration) -> Calibration:
    """The calibration a record is judged by: ``cal``, unless its scan ran at another budget than
    ``cal``'s (a budget fallback), whose shipped file judged it."""
    return cal if ran_at(record, cal.budget) else shipped_calibration(record["budget"])


def record_classes(record: dict[str, Any], num_classes: int | None) -> int | None:
    """A bench record's class count: its own, else the zoo's (records before 2026-12-04 carry none)."""
    return record.get("num_classes") or num_classes


# Zoo manifests name an architecture by its zoo name; scans by the adapter's (the config's class).
ZOO_ARCHITECTURES = {"resnet": "ResNetForImageClassification", "vit": "ViTForImageClassification"}


def record_architecture(record: dict[str, Any]) -> str | None:
    """A bench record's architecture as scans name it: its own, else its zoo architecture's
    (records before 2026-12-06 carry only the zoo's name)."""
    return record.get("architecture") or ZOO_ARCHITECTURES.get(record.get("arch") or "")


def model_probability(record: dict[str, Any], cal: Calibration, num_classes: int | None = None) -> float:
    """The verdict's probability for a bench record, under ``cal``, for its class count and architecture."""
    return probability(record["features"], cal, record_classes(record, num_classes), record_architecture(record))[0]


def reported_target(record: dict[str, Any], cal: Calibration) -> int | None:
    """The target a scan reports, rebuilt from its record by ``scan._suspected_targets`` under
    ``cal``'s detector thresholds, so that the figure does not depend on the calibration the
    model was scanned with."""
    from .detectors.feature import feature_found
    from .detectors.mmbd import mmbd_found
    from .detectors.pair import pair_found
    from .detectors.signal import signal_found, signal_works
    from .detectors.trigger import trigger_found
    from .detectors.warp import warp_found
    from .scan import _suspected_targets

    f = record["features"]
    signal_label, warp_label = record.get("signal_label"), record.get("warp_label")
    signal_cal = cal.detectors.get("signal", {})
    results = {
        "signal-trigger": {"label": signal_label, "flagged": signal_label is not None and signal_found(
            f.get("signal_gap"), f.get("signal_success"), signal_cal),
            "works": signal_works(f.get("signal_success"), signal_cal)},
        "warp-trigger": {"label": warp_label, "flagged": warp_label is not None and warp_found(
            f.get("warp_fragility"), f.get("warp_success"), cal.detectors.get("warp", {}))},
        "feature-trigger": {"label": record.get("feature_label"), "flagged": record.get("feature_label") is not None
                            and feature_found(f.get("feature_gap"), cal.detectors.get("feature", {}))},
        "pair-trigger": {"label": record.get("pair_label"), "flagged": record.get("pair_label") is not None
                         and pair_found(f.get("pair_score"), cal.detectors.get("pair", {}))},
        "trigger-recovery": {"label": record.get("candidate"), "flagged": trigger_found(
            f.get("trigger_log_ratio"), f.get("trigger_holdout_success"), cal.detectors.get("trigger", {}))},
    }
    # Only a significant MM-BD is passed on, so an unflagged one never replaces what the scan reported
    # below; records from before MM-BD's label was recorded carry none and are rebuilt as before.
    if record.get("mmbd_label") is not None and mmbd_found(f.get("mmbd_neglog10_p"), cal.detectors.get("mmbd", {})):
        results["mmbd"] = {"target": record["mmbd_label"], "flagged": True}
    picked = _suspected_targets(results)
    return picked[0] if picked else (record["suspected"] or [None])[0]


def _rate(xs: list[bool]) -> float | None:
    return sum(bool(x) for x in xs) / len(xs) if xs else None


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def require_both_kinds(fit: list[dict], hint: str) -> None:
    """A combiner fit needs clean and backdoored models; without both it is the user's split, not a bug."""
    if not any(r["backdoored"] for r in fit) or all(r["backdoored"] for r in fit):
        raise UsageError(f"the fitting split needs both clean and backdoored models: {hint}")


def manifest_hash(zoo: Path) -> str:
    return hashlib.sha256((zoo / "manifest.json").read_bytes()).hexdigest()[:16]


def run_provenance(command: str) -> dict[str, Any]:
    """When, how and where a benchmark command ran (any result file, pooled ones too)."""
    import os

    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "command": command,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "modelscan_bd": __version__}


def provenance(zoo: Path, command: str, budget: str | None = None, seed: int | None = None) -> dict[str, Any]:
    import torch

    out = {**run_provenance(command), "torch_threads": torch.get_num_threads(),
           "zoo": str(zoo), "zoo_manifest_sha256": manifest_hash(zoo)}
    return {**out, "budget": budget, "seed": seed} if budget else out


def records_budget(prov: dict[str, Any]) -> str:
    """The scan budget of an earlier run's records (runs before it was recorded: from its command)."""
    if prov.get("budget"):
        return prov["budget"]
    found = re.search(r"--budget[ =](\w+)", prov.get("command") or "")
    return found.group(1) if found else "standard"  # the bench command's default


def provenance_lines(p: dict[str, Any]) -> list[str]:
    """The Markdown lines saying where, when, how and at which budget a benchmark ran (every family).
    Whether the machine was shared is not known here; the notes beside the results say so."""
    return [f"- date: {p['date']}", f"- machine: {p['machine']} (torch threads: {p['torch_threads']})",
            f"- command: `{p['command']}`", f"- zoo manifest sha256: `{p['zoo_manifest_sha256']}`",
            *([f"- scan budget: {p['budget']}, seed {p['seed']}"] if p.get("budget") else []),
            *([f"- per-model records (scans, timings) from: `{p['records_from']['command']}` on "
               f"{p['records_from']['date']}"] if p.get("records_from") else []),
            *([f"- scanned in this run (added to the zoo since): {', '.join(p['records_from']['scanned_here'])}"]
              if (p.get("records_from") or {}).get("scanned_here") else [])]


def fmt_cell(v: Any) -> str:
    """A Markdown table cell: '-' for missing, floats to 3 decimals."""
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def to_markdown(result: dict[str, Any]) -> str:
    p, m = result["provenance"], result["metrics"]
    f = fmt_cell
    lines = [f"# Benchmark: {Path(p['zoo']).name}", "", *provenance_lines(p),
             f"- calibration: {result['calibration']['version']} ({result['calibration']['description']})",
             f"- evaluated on: {result['split']}", "",
             "| method | AUROC | TPR@5%FPR | TPR | FPR | target acc | s/model |", "|---|---|---|---|---|---|---|",
             f"| modelscan-bd | {f(m['auroc'])} | {f(m['tpr_at_5fpr'])} | {f(m['tpr'])} | {f(m['fpr'])} | "
             f"{f(m['target_accuracy'])} | {f(m['seconds_per_model'])} |"]
    for base, label in (("neural_cleanse", "Neural Cleanse (all labels, AI > 2)"),
                        ("ebyd_variance", "EBYD variance (> 0.01)")):
        if base in m:
            b = m[base]
            lines.append(f"| {label} | {f(b['auroc'])} | {f(b['tpr_at_5fpr'])} | {f(b['tpr'])} | {f(b['fpr'])} | "
                         f"{f(b['target_accuracy'])} | {f(b['seconds_per_model'])} |")
    lines += ["", f"Log loss {f(m['log_loss'])}; accuracy {f(m['accuracy'])}; hard clean models flagged: "
              f"{f(m['hard_clean_fpr'])}; peak memory {f(m['peak_mb_max'])} MB.", "",
              "| attack | models | detection rate | AUROC vs clean | trigger success | mask IoU |", "|---|---|---|---|---|---|"]
    for attack, a in m["per_attack"].items():
        lines.append(f"| {attack} | {a['models']} | {f(a['detection_rate'])} | {f(a['auroc_vs_clean'])} | "
                     f"{f(a['trigger_success'])} | {f(a['trigger_iou'])} |")
    if "all_to_all" in m["per_attack"]:
        lines += ["", "All-to-all rows score label-map's trigger where it ran (20+ classes): its success is the share "
                      "of held-out images sent to their own true destination."]
    return "\n".join(lines) + "\n"


def run_bench(zoo: Path, out: Path, *, budget: str, seed: int, baselines: bool, calibrate: bool,
              holdout_attacks: list[str], holdout_seeds: list[int], calibration_out: str | None,
              from_results: str | None, command: str, progress: Callable[[str], None],
              fit_rows: list[str] | None = None, other_recipes: list[str] | None = None,
              cuts_only: bool = False, fit_results: list[str] | None = None,
              architecture: str | None = None, budget_fallback: bool = True) -> dict[str, Any]:
    from .reports.atomic import atomic_write_text

    manifest = read_manifest(zoo)
    family = manifest.get("family")
    kind = manifest.get("kind") or family or "classifier"
    if fit_rows and kind != "merging":
        raise UsageError(f"--fit-rows is for merging zoos, not a {kind} zoo")
    if other_recipes and kind != "classifier":
        raise UsageError(f"--other-recipes is for classifier zoos, not a {kind} zoo")
    if cuts_only and kind != "classifier":
        raise UsageError(f"--cuts-only is for classifier zoos, not a {kind} zoo")
    if fit_results and kind != "classifier":
        raise UsageError(f"--fit-results is for classifier zoos, not a {kind} zoo")
    if manifest.get("kind") == "merging":
        from .gate_bench import run_merging_bench

        # read before any scan, so a bad file fails in a second, not after an hour of scanning
        extra = [row for f in fit_rows or [] for row in read_jsonl(Path(f), "--fit-rows file")]
        return run_merging_bench(zoo, out, budget=budget, seed=seed, command=command, calibrate=calibrate,
                                 calibration_out=calibration_out, extra_fit_rows=extra, progress=progress)
    if family == "clip":
        from .bench_clip import run_clip_bench

        return run_clip_bench(zoo, out, budget=budget, seed=seed, calibrate_split=calibrate,
                              holdout_attacks=holdout_attacks, holdout_seeds=holdout_seeds,
                              calibration_out=calibration_out, from_results=from_results, command=command,
                              progress=progress)
    if family == "text-to-image":
        from .bench_text_to_image import run_t2i_bench

        return run_t2i_bench(zoo, out, budget=budget, seed=seed, calibrate=calibrate, holdout_attacks=holdout_attacks,
                             calibration_out=calibration_out, from_results=from_results, command=command,
                             progress=progress)
    if family == "diffusion":
        from .bench_diffusion import run_diffusion_bench

        return run_diffusion_bench(zoo, out, budget=budget, seed=seed, baselines=baselines, calibrate=calibrate,
                                   holdout_attacks=holdout_attacks, holdout_seeds=holdout_seeds,
                                   calibration_out=calibration_out, from_results=from_results, command=command,
                                   progress=progress)
    if other_recipes and not calibrate:
        raise UsageError("--other-recipes needs --calibrate")
    if cuts_only and not calibrate:
        raise UsageError("--cuts-only needs --calibrate")
    if fit_results and not calibrate:
        raise UsageError("--fit-results needs --calibrate")
    if architecture and not calibrate:
        raise UsageError("--architecture needs --calibrate")
    if (cuts_only or architecture) and not manifest.get("num_classes"):
        option = "--cuts-only" if cuts_only else "--architecture"
        raise UsageError(f"{option} needs the zoo's class count; {zoo / 'manifest.json'} does not record "
                         "num_classes (rebuild the zoo with `modelscan-bd zoo build`)")
    others = other_recipes_clean(other_recipes or [], budget)  # usage errors before any scan
    joined = {f: read_results_at(f, budget, "--fit-results")["records"] for f in fit_results or []}
    records, scanned_by = load_or_scan(from_results, lambda known: scan_zoo(zoo, budget, seed, baselines, progress,
                                                                           known=known,
                                                                           budget_fallback=budget_fallback), budget)
    num_classes = manifest.get("num_classes")
    fell_back = [r for r in records if not ran_at(r, budget)]
    if calibrate:
        fit, held = split(records, holdout_attacks, holdout_seeds, budget)
        # other zoos' records join the fitting split under the same rules; none is evaluated
        joined = {f: split(rs, holdout_attacks, holdout_seeds, budget)[0] for f, rs in joined.items()}
        fit_here = len(fit)
        fit = fit + [r for rs in joined.values() for r in rs]
        if cuts_only and architecture:
            cal = architecture_cuts_records(fit, zoo, num_classes, budget, architecture, others)
        elif cuts_only:
            cal = class_cuts_records(fit, zoo, num_classes, budget, others, joined=any(joined.values()))
        elif architecture:
            cal = architecture_combiner_records(fit, zoo, num_classes, budget, architecture, others,
                                                joined=any(joined.values()))
        else:
            require_both_kinds(fit, "hold out fewer seeds or attacks")
            cal = calibrate_records(fit, zoo, budget, others, num_classes, joined)
        if calibration_out:
            atomic_write_text(calibration_out, cal.to_json())
        evaluated = held
        split_desc = (f"held-out split: {len(held)} models (training seeds {holdout_seeds} and attack families "
                      f"{holdout_attacks} never used in fitting); fitted on {fit_here} others"
                      + "".join(f" and {len(rs)} models of {name}" for name, rs in joined.items())
                      + "".join(f"; threshold also from {len(rs)} clean models of {name}"
                                for name, rs in others.items()))
        if cuts_only:
            which = f" {architecture}" if architecture else ""
            split_desc += (f"; only the cuts for {num_classes}-class{which} models were fitted, on the "
                           f"clean models of the fitting split and of any zoos above")
        elif architecture:
            split_desc += (f"; only a combiner and cuts for {architecture} models were fitted, on the fitting "
                           f"split's models of that architecture")
    else:
        cal = load_calibration(budget=budget)
        evaluated = records
        split_desc = f"all {len(records)} models of the zoo, with the shipped calibration"
    archs = {record_architecture(r) for r in evaluated}
    backdoored, suspicious, entry = cal.cuts_for(num_classes, archs.pop() if len(archs) == 1 else None)
    if fell_back:
        ran = sorted({r["budget"] for r in fell_back})
        split_desc += (f"; {len(fell_back)} models ran at budget {', '.join(ran)} through the calibration's budget "
                       f"fallback and are judged by that budget's shipped file")
    if entry and len(fell_back) < len(evaluated):
        own = "combiner and cuts" if "combiner" in entry else "cuts"
        which = "".join(f" {a}" for a in entry.get("architectures") or [])
        split_desc += (f"; judged by its {own} for {entry['min_classes']}+-class{which} models (BACKDOORED "
                       f"{backdoored:.3f}, SUSPICIOUS {suspicious:.3f})")
    return write_results(out, zoo, command, scanned_by, cal.describe(), split_desc,
                         metrics(evaluated, cal, num_classes), records, to_markdown, budget=budget, seed=seed)


def load_or_scan(from_results: str | None, scan: Callable[[dict[str, dict] | None], list[dict]],
                 budget: str) -> tuple[list[dict], dict | None]:
    """Per-model records: a fresh scan of the zoo, or with ``from_results`` an earlier run's
    records for the models it scanned and fresh scans for models added to the zoo since (a zoo
    extended with ``zoo build``'s larger counts). ``scan(known)`` scans the zoo's models
    that are not in ``known``.

    Records scanned at another budget are refused (``read_results_at``). Every family's
    benchmark comes through here.
    """
    if not from_results:
        return scan(None), None
    earlier = read_results_at(from_results, budget, "--from-results")
    known = {r["name"]: r for r in earlier["records"]}
    records = scan(known)
    return records, {**earlier["provenance"], "scanned_here": [r["name"] for r in records if r["name"] not in known]}


def read_results_at(path: str, budget: str, option: str) -> dict[str, Any]:
    """An earlier bench run's results, refused (a usage error, before anything is written) when
    its records were scanned at another budget: their features come from another exposure and
    would be judged by the wrong calibration."""
    earlier = read_json(Path(path), f"{option} file")
    if not (isinstance(earlier, dict) and isinstance(earlier.get("records"), list)
            and isinstance(earlier.get("provenance"), dict)):
        raise InputError(f"unreadable {option} file {path}: not a bench results.json")
    scanned_at = records_budget(earlier["provenance"])
    if scanned_at != budget:
        raise UsageError(f"{option} {path} was scanned at budget {scanned_at}, not {budget}: "
                         f"pass --budget {scanned_at} or scan again")
    return earlier


def write_results(out: Path, zoo: Path, command: str, scanned_by: dict | None, calibration: dict | None,
                  split: str, metrics_: dict, records: list[dict],
                  markdown: Callable[[dict[str, Any]], str], *, budget: str, seed: int) -> dict[str, Any]:
    """Assemble a benchmark result (any family) and write results.json and results.md atomically.

    scanned_by: the earlier run whose per-model records (timings included) were reused.
    """
    prov = provenance(zoo, command, budget, seed)
    if scanned_by:
        prov["records_from"] = {k: scanned_by[k] for k in ("date", "command", "machine", "torch_threads",
                                                           "scanned_here") if k in scanned_by}
    result = {"provenance": prov, "calibration": calibration, "split": split, "metrics": metrics_,
              "records": records}
    result["markdown"] = markdown(result)
    write_result_files(out, result)
    return result


def write_result_files(out: Path, result: dict[str, Any]) -> None:
    """results.json and results.md (``result["markdown"]``) in ``out``, each written atomically."""
    from .reports.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RESULTS_FILE, json.dumps(result, indent=2, default=_json_default) + "\n")
    atomic_write_text(out / "results.md", result["markdown"])


def other_recipes_clean(files: list[str], budget: str) -> dict[str, list[dict]]:
    """``--other-recipes``: the clean models (hard ones aside) of other zoos' bench records (their
    ``results.json``), by file, whose recipe the zoo lacks (e.g. longer training). They set the
    BACKDOORED threshold together with the fitting split's clean models (``fit_calibration``'s
    ``other_recipes_clean``); the combiner is never fitted on them, and none is reported."""
    out: dict[str, list[dict]] = {}
    for f in files:
        earlier = read_results_at(f, budget, "--other-recipes")
        out[str(f)] = [r for r in earlier["records"] if not r["backdoored"] and not r["hard"] and ran_at(r, budget)]
    return out


def calibration_version(zoo: Path, budget: str | None = None, family: str | None = None) -> str:
    """The version a calibration fitted on ``zoo``'s scans gets: family, date, the zoo manifest's
    hash and the budget. The budget is in it because files fitted on one zoo's scans at two
    budgets must not share a version; the classifier, diffusion and CLIP benches all use this."""
    parts = [family] if family else []
    parts += [_dt.date.today().isoformat(), manifest_hash(zoo)[:8]] + ([budget] if budget else [])
    return "-".join(parts)


def calibrate_records(fit: list[dict], zoo: Path, budget: str | None = None,
                      others: dict[str, list[dict]] | None = None, num_classes: int | None = None,
                      joined: dict[str, list[dict]] | None = None) -> Calibration:
    """Fit the combiner and cuts on ``fit``, whose last records are ``joined`` (``--fit-results``:
    other zoos' records, by file). A fit with joined records names them in its description and,
    by a hash of their features, in its version: it is not the zoo's own fit."""
    version = calibration_version(zoo, budget)
    extra = [r for rs in (joined or {}).values() for r in rs]
    if extra:
        version += "-joined-" + hashlib.sha256(json.dumps([r["features"] for r in extra], sort_keys=True)
                                               .encode()).hexdigest()[:6]
    other_clean = [r for rs in (others or {}).values() for r in rs]
    where = f" of zoo {zoo.name}" if not extra else (
        f": {len(fit) - len(extra)} of zoo {zoo.name}"
        + "".join(f", {len(rs)} of {f}" for f, rs in (joined or {}).items()) + ";")
    cal = calibrate(fit, version, f"fitted on {len(fit)} models ({sum(r['backdoored'] for r in fit)} backdoored)"
                                  + where
                                  + (f" scanned at budget {budget}" if budget else "")
                                  + (f"; BACKDOORED threshold also from {len(other_clean)} clean models of "
                                     f"{len(others)} zoos of other recipes" if other_clean else ""),
                    budget, other_clean)
    return keep_class_entries(cal, load_calibration(budget=budget), num_classes)


def keep_class_entries(cal: Calibration, shipped: Calibration, num_classes: int | None) -> Calibration:
    """A refit of the file's own combiner on a zoo of ``num_classes`` classes keeps the shipped
    file's entries for larger class counts (``Calibration.class_cuts``): they hold their own cuts,
    combiner and references, fitted on zoos of those counts that this zoo cannot replace. Entries
    that would apply to this zoo's own models are dropped, as is everything when the count is unknown."""
    kept = [c for c in shipped.class_cuts if num_classes is not None and c["min_classes"] > num_classes]
    cal.class_cuts = kept
    if kept:
        cal.description += (f"; entries for {', '.join(str(c['min_classes']) + '+' for c in kept)} classes kept "
                            f"from calibration {shipped.version}")
    return cal


def cuts_version(base: Calibration, tag: str, clean: list[dict]) -> tuple[str, str]:
    """The version of ``base`` refitted with cuts named ``tag`` on the features ``clean``: (``base``'s
    version without an earlier fit's ``tag``, that plus ``tag``, the date and a hash of ``clean``).
    A refit replaces the shipped cuts of its tag, so its tag replaces theirs; the hash names the
    clean models it was fitted on, so two fits never share a version."""
    combiner = re.sub(re.escape(tag) + r"-\d{4}-\d{2}-\d{2}-[0-9a-f]{8}", "", base.version)
    fitted_on = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:8]
    return combiner, f"{combiner}{tag}-{_dt.date.today().isoformat()}-{fitted_on}"


def class_cuts_records(fit: list[dict], zoo: Path, num_classes: int, budget: str,
                       others: dict[str, list[dict]] | None = None, joined: bool = False) -> Calibration:
    """``--cuts-only``: the shipped calibration at ``budget``, its combiner unchanged, with cuts for
    models of this zoo's class count fitted on the fitting split's clean models (hard ones aside,
    as ``split`` keeps them out) and the ``--other-recipes`` clean models. ``run_bench`` has
    checked that the zoo records ``num_classes``."""
    base = load_calibration(budget=budget)
    clean = [r["features"] for r in fit if not r["backdoored"]]
    clean += [r["features"] for rs in (others or {}).values() for r in rs]
    if not clean:
        raise UsageError("the fitting split has no clean models to fit the cuts on: hold out fewer seeds")
    combiner, version = cuts_version(base, f"+cuts{num_classes}", clean)
    return fit_class_cuts(
        base, clean, num_classes, version=version,
        description=f"fitted on {len(clean)} clean models of zoo {zoo.name}"
                    + (" and of other zoos" if others or joined else "")
                    + f" ({num_classes} classes, budget {budget}); combiner {combiner} unchanged")


def architecture_cuts_records(fit: list[dict], zoo: Path, num_classes: int, budget: str, architecture: str,
                              others: dict[str, list[dict]] | None = None) -> Calibration:
    """``--cuts-only --architecture NAME``: the shipped calibration at ``budget``, its combiners
    unchanged, with cuts for models of that architecture (``verdict.fit_architecture_cuts``), fitted
    on the fitting split's clean models of that architecture and any ``--other-recipes`` ones."""
    base = load_calibration(budget=budget)
    clean = [r["features"] for r in fit if not r["backdoored"] and record_architecture(r) == architecture]
    clean += [r["features"] for rs in (others or {}).values() for r in rs if record_architecture(r) == architecture]
    if not clean:
        raise UsageError(f"the fitting split has no clean {architecture} models to fit the cuts on")
    combiner, version = cuts_version(base, f"+cuts-{architecture}", clean)
    return fit_architecture_cuts(
        base, clean, architecture, num_classes, version=version,
        description=f"fitted on {len(clean)} clean {architecture} models of zoo {zoo.name}"
                    + (" and of other zoos" if others else "")
                    + f" ({num_classes} classes, budget {budget}); combiner {combiner} unchanged")


def architecture_combiner_records(fit: list[dict], zoo: Path, num_classes: int, budget: str, architecture: str,
                                  others: dict[str, list[dict]] | None = None, joined: bool = False) -> Calibration:
    """``--calibrate --architecture NAME``: the shipped calibration at ``budget`` with an entry of its
    own combiner and cuts for models of that architecture (``verdict.fit_architecture_combiner``),
    fitted on the fitting split's models of that architecture; clean ones of any ``--other-recipes``
    zoos join the cuts, never the weights. The shipped file's other entries stay."""
    base = load_calibration(budget=budget)
    rows = [r for r in fit if record_architecture(r) == architecture]
    require_both_kinds(rows, f"no {architecture} models of one kind; hold out fewer seeds or attacks")
    other_clean = [r["features"] for rs in (others or {}).values() for r in rs
                   if record_architecture(r) == architecture]
    clean = [r["features"] for r in rows if not r["backdoored"]] + other_clean
    combiner, version = cuts_version(base, f"+combiner-{architecture}", [r["features"] for r in rows])
    n_bd = sum(bool(r["backdoored"]) for r in rows)
    return fit_architecture_combiner(
        base, [r["features"] for r in rows], [int(r["backdoored"]) for r in rows], clean, architecture,
        num_classes, version=version,
        description=f"fitted on {len(rows)} {architecture} models ({n_bd} backdoored) of zoo {zoo.name}"
                    + (" and of other zoos" if joined else "")
                    + (f"; cuts also from {len(other_clean)} clean models of other recipes" if others else "")
                    + f" ({num_classes} classes, budget {budget}); the file's other combiners unchanged")


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
