"""``modelscan-bd bench`` for CLIP zoos (dispatched by the manifest's ``family: clip``).

Metrics: AUROC, TPR at 5 % FPR, target-concept accuracy (the suspected concept is the
attack's target caption class), seconds per model; plain DECREE (absolute PL1 < 0.1, and
its score -PL1 for AUROC) from the same scans as the in-run baseline; the hard clean
models (an innocuous motif co-occurring with one caption) on their own line.

``--calibrate`` fits on one split and reports on the other. The fitting split gives
(1) the clean references of DECREE's PL1 per architecture (median and median absolute
deviation of log PL1 over the fitting split's clean models), from which every model's
relative statistic is recomputed, and (2) the logistic combiner. The held-out split is
other training seeds, whole attack families never seen in fitting, and every hard clean
model. Numbers on the fitting split are never reported.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .bench import (_mean, _rate, auroc, calibration_version, entries_to_scan, fmt_cell, load_or_scan, log_loss,
                    provenance_lines, read_manifest, read_truth, require_both_kinds, tpr_at_fpr, write_results)
from .detectors.decree import PLAIN_DECREE_THRESHOLD
from .scan_clip import CLIP_FEATURES
from .verdict import Calibration, fit_calibration, load_calibration, probability

DEFAULT_HOLDOUT_ATTACKS = ("blended",)


def scan_clip_zoo(zoo: Path, budget: str, seed: int, progress: Callable[[str], None],
                  known: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """One record per model, in manifest order (``known``: earlier records reused by name)."""
    from .scan import ScanConfig, scan
    from .scan_clip import clip_features, suspected_concept

    manifest = read_manifest(zoo)
    clean_data = str(zoo / manifest.get("clean_data", "clean-data.npz"))
    records: list[dict[str, Any]] = []
    for entry in entries_to_scan(zoo, records, known, progress):
        truth = read_truth(zoo, entry)
        t = time.perf_counter()
        outcome = scan(str(zoo / entry["path"]), ScanConfig(budget=budget, seed=seed, clean_data=clean_data,
                                                            labels=manifest["classes"]))
        seconds = time.perf_counter() - t
        results = outcome.context.results if outcome.context else {}
        decree = results.get("decree") or {}
        records.append({
            "name": entry["name"], "arch": entry.get("arch"), "architecture": outcome.report["family"]["architecture"],
            "attack": truth.get("attack") or "clean", "backdoored": bool(truth.get("backdoored")),
            "target": truth.get("target"), "target_text": truth.get("target_text"), "hard": bool(entry.get("hard")),
            "seed": entry.get("seed"), "asr": truth.get("asr"), "clean_acc": truth.get("clean_acc"),
            "features": clip_features(results), "pl1": decree.get("pl1"),
            "decree_holdout_similarity": decree.get("holdout_similarity"),
            "suspected": suspected_concept(results), "status": outcome.report["verdict"]["status"],
            "seconds": round(seconds, 2), "peak_mb": outcome.report["timing"]["peak_memory_mb"],
            "steps": outcome.report["timing"]["steps"]})
        progress(f"    pl1={decree.get('pl1')} features={records[-1]['features']} ({seconds:.0f}s)")
    return records


def split(records: list[dict], holdout_attacks: list[str], holdout_seeds: list[int]) -> tuple[list, list]:
    """Fit on some seeds and attacks; hold out other seeds, unseen attack families and every hard model."""
    fit, held = [], []
    for i, r in enumerate(records):
        if r["hard"] or r["attack"] in holdout_attacks:
            held.append(r)
        elif r["backdoored"]:
            # backdoored seeds are unique per model: alternate within each attack family
            same = [x for x in records if x["attack"] == r["attack"]]
            (fit if same.index(r) % 2 == 0 else held).append(r)
        else:
            (held if r.get("seed") in holdout_seeds else fit).append(r)
    return fit, held


def decree_references(clean_records: list[dict]) -> dict[str, dict]:
    """Median / MAD of log PL1 per architecture and over the family ('*')."""
    def ref(rs, arch):
        logs = np.log(np.maximum([r["pl1"] for r in rs], 1e-4))
        med = float(np.median(logs))
        return {"median_log_pl1": med, "mad_log_pl1": float(np.median(np.abs(logs - med))), "models": len(rs),
                "architecture": arch}

    rs = [r for r in clean_records if r.get("pl1") is not None]
    out = {"*": ref(rs, "*")} if rs else {}
    for arch in sorted({r["architecture"] for r in rs}):
        out[arch] = ref([r for r in rs if r["architecture"] == arch], arch)
    return out


def with_relative(records: list[dict], refs: dict) -> list[dict]:
    """Records with ``decree_relative`` recomputed against ``refs`` (no rescanning)."""
    out = []
    for r in records:
        ref = refs.get(r["architecture"]) or refs.get("*")
        rel = None if ref is None or r.get("pl1") is None else ref["median_log_pl1"] - math.log(max(r["pl1"], 1e-4))
        out.append({**r, "features": {**r["features"], "decree_relative": None if rel is None
                                      else max(-3.0, min(5.0, rel))}})
    return out


def calibrate(fit: list[dict], version: str, description: str, budget: str | None = None) -> Calibration:
    refs = decree_references([r for r in fit if not r["backdoored"] and not r["hard"]])
    fit = with_relative(fit, refs)
    shipped = load_calibration(family="clip", budget=budget).detectors
    detectors = {**shipped, "decree": {**shipped.get("decree", {}), "decree_references": refs}}
    return fit_calibration([r["features"] for r in fit], [int(r["backdoored"]) for r in fit], CLIP_FEATURES,
                           version=version, description=description, detectors=detectors, budget=budget)


def _block(records: list[dict], probs: list[float], cal: Calibration) -> dict[str, Any]:
    labels = [int(r["backdoored"]) for r in records]
    flagged = [p >= cal.backdoored_threshold for p in probs]
    return {"models": len(records), "backdoored": sum(labels), "clean": len(labels) - sum(labels),
            "auroc": auroc(probs, labels), "tpr_at_5fpr": tpr_at_fpr(probs, labels), "log_loss": log_loss(probs, labels),
            "tpr": _rate([f for f, y in zip(flagged, labels) if y]),
            "fpr": _rate([f for f, y in zip(flagged, labels) if not y])}


def metrics(records: list[dict], cal: Calibration) -> dict[str, Any]:
    records = with_relative(records, cal.detectors.get("decree", {}).get("decree_references") or {})
    probs = [probability(r["features"], cal)[0] for r in records]
    out = _block(records, probs, cal)
    easy = [(p, r) for p, r in zip(probs, records) if not r["hard"]]
    out["without_hard"] = _block([r for _, r in easy], [p for p, _ in easy], cal)
    bd = [r for r in records if r["backdoored"]]
    out["target_accuracy"] = _rate([r["suspected"] == r["target"] for r in bd])
    hard = [(p, r) for p, r in zip(probs, records) if r["hard"]]
    clean_easy = [p for p, r in zip(probs, records) if not r["hard"] and not r["backdoored"]]
    out["hard_clean"] = {"models": len(hard), "flagged": _rate([p >= cal.backdoored_threshold for p, _ in hard]),
                         "mean_probability": _mean([p for p, _ in hard]),
                         "plain_decree_flagged": _rate([(r["pl1"] or 1) < PLAIN_DECREE_THRESHOLD for _, r in hard]),
                         "pl1": [round(r["pl1"], 4) if r["pl1"] is not None else None for _, r in hard],
                         "mean_probability_other_clean": _mean(clean_easy)}
    out["per_attack"] = {}
    for attack in sorted({r["attack"] for r in records}):
        rs = [(p, r) for p, r in zip(probs, records) if r["attack"] == attack]
        out["per_attack"][attack] = {"models": len(rs),
                                     "detection_rate": _rate([p >= cal.backdoored_threshold for p, _ in rs]),
                                     "mean_pl1": _mean([r["pl1"] for _, r in rs]),
                                     "target_accuracy": _rate([r["suspected"] == r["target"] for _, r in rs
                                                               if r["backdoored"]])}
    out["seconds_per_model"] = _mean([r["seconds"] for r in records])
    out["peak_mb_max"] = max((r["peak_mb"] or 0 for r in records), default=None)
    # Plain DECREE: the absolute PL1 threshold, and -PL1 as its score.
    labels = [int(r["backdoored"]) for r in records]
    pl1 = [r["pl1"] if r["pl1"] is not None else 1.0 for r in records]
    flags = [p < PLAIN_DECREE_THRESHOLD for p in pl1]
    out["plain_decree"] = {"auroc": auroc([-p for p in pl1], labels), "tpr_at_5fpr": tpr_at_fpr([-p for p in pl1], labels),
                           "tpr": _rate([f for f, y in zip(flags, labels) if y]),
                           "fpr": _rate([f for f, y in zip(flags, labels) if not y]),
                           "auroc_without_hard": auroc([-p for p, r in zip(pl1, records) if not r["hard"]],
                                                       [y for y, r in zip(labels, records) if not r["hard"]])}
    return out


def to_markdown(result: dict[str, Any]) -> str:
    p, m = result["provenance"], result["metrics"]
    f = fmt_cell
    pd, h, nh = m["plain_decree"], m["hard_clean"], m["without_hard"]
    lines = [f"# Benchmark (CLIP): {Path(p['zoo']).name}", "", *provenance_lines(p),
             f"- calibration: {result['calibration']['version']} ({result['calibration']['description']})",
             f"- evaluated on: {result['split']}", "",
             "| method | AUROC | TPR@5%FPR | TPR | FPR | target-concept acc | s/model |", "|---|---|---|---|---|---|---|",
             f"| modelscan-bd (relative, all held-out incl. hard) | {f(m['auroc'])} | {f(m['tpr_at_5fpr'])} | "
             f"{f(m['tpr'])} | {f(m['fpr'])} | {f(m['target_accuracy'])} | {f(m['seconds_per_model'])} |",
             f"| modelscan-bd, hard clean models left out | {f(nh['auroc'])} | {f(nh['tpr_at_5fpr'])} | {f(nh['tpr'])} | "
             f"{f(nh['fpr'])} | - | - |",
             f"| plain DECREE (PL1 < {PLAIN_DECREE_THRESHOLD}; same scans) | {f(pd['auroc'])} | {f(pd['tpr_at_5fpr'])} | "
             f"{f(pd['tpr'])} | {f(pd['fpr'])} | - | (included) |", "",
             f"Hard clean models (motif co-occurring with one caption): {h['models']}; flagged "
             f"{f(h['flagged'])} (mean p {f(h['mean_probability'])} vs {f(h['mean_probability_other_clean'])} for the "
             f"other clean models); plain DECREE flags {f(h['plain_decree_flagged'])} of them (PL1 {h['pl1']}). "
             f"Plain DECREE AUROC without the hard models: {f(pd['auroc_without_hard'])}.", "",
             f"Log loss {f(m['log_loss'])}; peak memory {f(m['peak_mb_max'])} MB.", "",
             "| attack | models | detection rate | mean PL1 | target-concept acc |", "|---|---|---|---|---|"]
    for attack, a in m["per_attack"].items():
        lines.append(f"| {attack} | {a['models']} | {f(a['detection_rate'])} | {f(a['mean_pl1'])} | "
                     f"{f(a['target_accuracy'])} |")
    return "\n".join(lines) + "\n"


def run_clip_bench(zoo: Path, out: Path, *, budget: str, seed: int, calibrate_split: bool, holdout_attacks: list[str],
                   holdout_seeds: list[int], calibration_out: str | None, from_results: str | None, command: str,
                   progress: Callable[[str], None]) -> dict[str, Any]:
    from .reports.atomic import atomic_write_text

    records, scanned_by = load_or_scan(from_results, lambda known: scan_clip_zoo(zoo, budget, seed, progress, known),
                                       budget)
    if calibrate_split:
        from .zoo.clip import ATTACKS

        # The classifier defaults name classifier attacks; a CLIP zoo holds out its own.
        holdout_attacks = [a for a in holdout_attacks if a in ATTACKS] or list(DEFAULT_HOLDOUT_ATTACKS)
        fit, held = split(records, holdout_attacks, holdout_seeds)
        require_both_kinds(fit, "hold out fewer seeds or attacks")
        version = calibration_version(zoo, budget)
        cal = calibrate(fit, version, f"fitted on {len(fit)} models of CLIP zoo {zoo.name} "
                                      f"({sum(r['backdoored'] for r in fit)} backdoored) scanned at budget {budget}",
                        budget)
        if calibration_out:
            atomic_write_text(calibration_out, cal.to_json())
        evaluated = held
        split_desc = (f"held-out split: {len(held)} models (clean seeds {holdout_seeds}, attack families "
                      f"{holdout_attacks} and all hard clean models never used in fitting); fitted on "
                      f"{len(fit)}: {', '.join(r['name'] for r in fit)}")
    else:
        cal = load_calibration(family="clip", budget=budget)
        evaluated = records
        split_desc = f"all {len(records)} models of the zoo, with the shipped calibration"
    return write_results(out, zoo, command, scanned_by, cal.describe(), split_desc, metrics(evaluated, cal), records,
                         to_markdown, budget=budget, seed=seed)
