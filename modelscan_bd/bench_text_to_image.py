"""``modelscan-bd bench`` on a text-to-image zoo (the manifest says ``"family": "text-to-image"``).

Per model: the scanner's features and verdict, whether the suspected trigger is the true one
(trigger-identification accuracy; also whether the true trigger is in the top-5 ranking),
seconds per model. Single-statistic AUROCs (assimilation z alone, output-collapse z alone)
are reported besides the calibrated combiner.

``--calibrate`` fits the combiner on one split and reports on the other: the held-out attack
families (default: the Rickrolling-style text-encoder backdoor) are never fitted on, and every
other clean and backdoored model alternates between the splits. Fitting-split numbers are
never reported as results.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from .bench import _mean, _rate, auroc, entries_to_scan, fmt_cell, load_or_scan, read_truth, write_results
from .bench_diffusion import calibrate_alternating, detection_metrics, header_lines
from .verdict import Calibration

HOLDOUT_ATTACK = "rickroll"


def scan_t2i_zoo(zoo: Path, budget: str, seed: int, progress: Callable[[str], None],
                 known: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """One record per model, in manifest order (``known``: earlier records reused by name)."""
    from .scan import ScanConfig, scan

    torch.set_num_threads(1)
    records: list[dict[str, Any]] = []
    for entry in entries_to_scan(zoo, records, known, progress):
        truth = read_truth(zoo, entry)
        t = time.perf_counter()
        outcome = scan(str(zoo / entry["path"]), ScanConfig(budget=budget, seed=seed))
        seconds = time.perf_counter() - t
        res = (outcome.context.results.get("t2i-assimilation") if outcome.context else None) or {}
        ranking = [c["candidate"] for c in res.get("ranking", [])]
        rec: dict[str, Any] = {
            "name": entry["name"], "attack": truth.get("attack") or "clean", "backdoored": bool(truth["backdoored"]),
            "trigger": truth.get("trigger"), "seed": entry.get("seed"), "asr": truth.get("asr"), "hard": False,
            "features": outcome.report["verdict"].get("features") or {}, "status": outcome.report["verdict"]["status"],
            "suspected_trigger": res.get("trigger"), "assimilation_top": res.get("assimilation_top"),
            "collapse_top": res.get("collapse_top"), "top5": ranking,
            "seconds": round(seconds, 2), "peak_mb": outcome.report["timing"]["peak_memory_mb"],
            "steps": outcome.report["timing"]["steps"],
        }
        if truth["backdoored"]:
            rec["trigger_found"] = res.get("trigger") == truth.get("trigger")
            rec["trigger_in_top5"] = truth.get("trigger") in ranking
        records.append(rec)
        progress(f"  features={rec['features']} suspected={rec['suspected_trigger']!r} "
                 f"(truth {truth.get('trigger')!r}) ({seconds:.0f}s)")
    return records


def metrics(records: list[dict], cal: Calibration | None) -> dict[str, Any]:
    labels = [int(r["backdoored"]) for r in records]
    flagged, out = detection_metrics(records, cal)
    bd = [r for r in records if r["backdoored"]]
    out |= {
        "auroc_assimilation_alone": auroc([r["features"].get("assimilation_z") or 0.0 for r in records], labels),
        "auroc_assimilation_abs_alone": auroc([r["features"].get("assimilation_abs_z") or 0.0 for r in records],
                                              labels),
        "auroc_collapse_alone": auroc([r["features"].get("collapse_z") or 0.0 for r in records], labels),
        "auroc_collapse_log_ratio_alone": auroc([r["features"].get("collapse_log_ratio") or 0.0 for r in records],
                                                labels),
        "trigger_accuracy": _rate([r.get("trigger_found") for r in bd]),
        "trigger_top5": _rate([r.get("trigger_in_top5") for r in bd]),
        "seconds_per_model": _mean([r["seconds"] for r in records]),
        "peak_mb_max": max((r["peak_mb"] or 0 for r in records), default=None),
        "per_attack": {},
    }
    for attack in sorted({r["attack"] for r in records}):
        rs = [(f, r) for f, r in zip(flagged, records) if r["attack"] == attack]
        out["per_attack"][attack] = {"models": len(rs), "detection_rate": _rate([f for f, _ in rs]),
                                     "trigger_accuracy": _rate([r.get("trigger_found") for _, r in rs
                                                                if r["backdoored"]]),
                                     "trigger_top5": _rate([r.get("trigger_in_top5") for _, r in rs
                                                            if r["backdoored"]])}
    return out


def to_markdown(result: dict[str, Any]) -> str:
    m = result["metrics"]
    f = fmt_cell
    lines = [*header_lines(result, "Text-to-image benchmark"),
             "| method | models | AUROC | accuracy | TPR | FPR | trigger-id accuracy | true trigger in top 5 | s/model |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| modelscan-bd (T2IShield-style search) | {m['models']} | {f(m['auroc'])} | {f(m['accuracy'])} | "
             f"{f(m['tpr'])} | {f(m['fpr'])} | {f(m['trigger_accuracy'])} | {f(m['trigger_top5'])} | "
             f"{f(m['seconds_per_model'])} |", "",
             f"Single statistics on the same split: assimilation z AUROC {f(m['auroc_assimilation_alone'])}, "
             f"two-sided assimilation |z| AUROC {f(m['auroc_assimilation_abs_alone'])}, "
             f"output-collapse z AUROC {f(m['auroc_collapse_alone'])}, output-collapse log ratio AUROC "
             f"{f(m.get('auroc_collapse_log_ratio_alone'))}. Log loss {f(m['log_loss'])}; peak memory "
             f"{f(m['peak_mb_max'])} MB.", "",
             "| attack | models | detection rate | trigger-id accuracy | in top 5 |", "|---|---|---|---|---|"]
    for attack, a in m["per_attack"].items():
        lines.append(f"| {attack} | {a['models']} | {f(a['detection_rate'])} | {f(a['trigger_accuracy'])} | "
                     f"{f(a['trigger_top5'])} |")
    lines += ["", "Per model (all splits; verdict with the calibration above):", "",
              "| model | attack | trigger | ASR | split | p | verdict | assimilation z (top) | collapse z (top) | "
              "collapse log ratio | suspected | s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["records"]:
        ft = r["features"]
        lines.append(f"| {r['name']} | {r['attack']} | {r['trigger']!r} | {f(r['asr'])} | {r.get('split', '-')} | "
                     f"{f(r.get('p'))} | {r.get('verdict') or '-'} | {f(ft.get('assimilation_z'))} "
                     f"({r.get('assimilation_top')!r}) | {f(ft.get('collapse_z'))} ({r.get('collapse_top')!r}) | "
                     f"{f(ft.get('collapse_log_ratio'))} | {r.get('suspected_trigger')!r} | {f(r['seconds'])} |")
    return "\n".join(lines) + "\n"


def run_t2i_bench(zoo: Path, out: Path, *, budget: str, seed: int, calibrate: bool, holdout_attacks: list[str],
                  calibration_out: str | None, from_results: str | None, command: str,
                  progress: Callable[[str], None]) -> dict[str, Any]:
    from .scan_text_to_image import FEATURES

    records, scanned_by = load_or_scan(from_results, lambda known: scan_t2i_zoo(zoo, budget, seed, progress, known),
                                       budget)
    attacks = {r["attack"] for r in records}
    held_attacks = [a for a in holdout_attacks if a in attacks] or [HOLDOUT_ATTACK]
    cal, evaluated, split_desc = calibrate_alternating(records, zoo, family="text-to-image", features=FEATURES,
                                                       holdout_attacks=held_attacks, calibrate=calibrate,
                                                       calibration_out=calibration_out, budget=budget)
    return write_results(out, zoo, command, scanned_by, cal.describe() if cal else None, split_desc,
                         metrics(evaluated, cal), records, to_markdown, budget=budget, seed=seed)
