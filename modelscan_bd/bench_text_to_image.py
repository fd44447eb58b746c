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

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .bench import _mean, _rate, auroc, log_loss, manifest_hash, tpr_at_fpr, write_results
from .bench_diffusion import split_diffusion
from .verdict import Calibration, fit_calibration, load_calibration, probability, status_for

HOLDOUT_ATTACK = "rickroll"


def scan_t2i_zoo(zoo: Path, budget: str, seed: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    from .scan import ScanConfig, scan

    torch.set_num_threads(1)
    manifest = json.loads((zoo / "manifest.json").read_text())
    records = []
    for i, entry in enumerate(manifest["models"]):
        progress(f"[{i + 1}/{len(manifest['models'])}] {entry['name']}")
        truth = json.loads((zoo / entry["truth_dir"] / "groundtruth.json").read_text())
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


def t2i_calibrate(fit: list[dict], zoo: Path, features: tuple[str, ...]) -> Calibration:
    """Logistic combiner; thresholds as the other families' benches set them."""
    labels = [int(r["backdoored"]) for r in fit]
    return fit_calibration([r["features"] for r in fit], labels, features,
                           version=f"text-to-image-{_dt.date.today().isoformat()}-{manifest_hash(zoo)[:8]}",
                           description=f"fitted on {len(fit)} models of text-to-image zoo {zoo.name} "
                                       f"({sum(labels)} backdoored)")


def metrics(records: list[dict], cal: Calibration | None) -> dict[str, Any]:
    labels = [int(r["backdoored"]) for r in records]
    probs = [probability(r["features"], cal)[0] if cal else 0.5 for r in records]
    flagged = [cal is not None and p >= cal.backdoored_threshold for p in probs]
    bd = [r for r in records if r["backdoored"]]
    out: dict[str, Any] = {
        "models": len(records), "backdoored": sum(labels), "clean": len(labels) - sum(labels),
        "auroc": auroc(probs, labels) if cal else None, "tpr_at_5fpr": tpr_at_fpr(probs, labels) if cal else None,
        "log_loss": log_loss(probs, labels) if cal else None,
        "accuracy": sum(f == bool(y) for f, y in zip(flagged, labels)) / max(1, len(labels)) if cal else None,
        "tpr": _rate([f for f, y in zip(flagged, labels) if y]), "fpr": _rate([f for f, y in zip(flagged, labels) if not y]),
        "auroc_assimilation_alone": auroc([r["features"].get("assimilation_z") or 0.0 for r in records], labels),
        "auroc_assimilation_abs_alone": auroc([r["features"].get("assimilation_abs_z") or 0.0 for r in records],
                                              labels),
        "auroc_collapse_alone": auroc([r["features"].get("collapse_z") or 0.0 for r in records], labels),
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
    p, m = result["provenance"], result["metrics"]
    f = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    cal = result["calibration"]
    lines = [f"# Text-to-image benchmark: {Path(p['zoo']).name}", "",
             f"- date: {p['date']}", f"- machine: {p['machine']} (torch threads: {p['torch_threads']}; shared machine)",
             f"- command: `{p['command']}`", f"- zoo manifest sha256: `{p['zoo_manifest_sha256']}`",
             *([f"- per-model records from: `{p['records_from']['command']}` on {p['records_from']['date']}"]
               if p.get("records_from") else []),
             f"- calibration: {cal['version'] if cal else 'none'} ({cal['description'] if cal else 'not fitted'})",
             f"- evaluated on: {result['split']}", "",
             "| method | models | AUROC | accuracy | TPR | FPR | trigger-id accuracy | true trigger in top 5 | s/model |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| modelscan-bd (T2IShield-style search) | {m['models']} | {f(m['auroc'])} | {f(m['accuracy'])} | "
             f"{f(m['tpr'])} | {f(m['fpr'])} | {f(m['trigger_accuracy'])} | {f(m['trigger_top5'])} | "
             f"{f(m['seconds_per_model'])} |", "",
             f"Single statistics on the same split: assimilation z AUROC {f(m['auroc_assimilation_alone'])}, "
             f"two-sided assimilation |z| AUROC {f(m['auroc_assimilation_abs_alone'])}, "
             f"output-collapse z AUROC {f(m['auroc_collapse_alone'])}. Log loss {f(m['log_loss'])}; peak memory "
             f"{f(m['peak_mb_max'])} MB.", "",
             "| attack | models | detection rate | trigger-id accuracy | in top 5 |", "|---|---|---|---|---|"]
    for attack, a in m["per_attack"].items():
        lines.append(f"| {attack} | {a['models']} | {f(a['detection_rate'])} | {f(a['trigger_accuracy'])} | "
                     f"{f(a['trigger_top5'])} |")
    lines += ["", "Per model (all splits; verdict with the calibration above):", "",
              "| model | attack | trigger | ASR | split | p | verdict | assimilation z (top) | collapse z (top) | "
              "suspected | s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["records"]:
        ft = r["features"]
        lines.append(f"| {r['name']} | {r['attack']} | {r['trigger']!r} | {f(r['asr'])} | {r.get('split', '-')} | "
                     f"{f(r.get('p'))} | {r.get('verdict') or '-'} | {f(ft.get('assimilation_z'))} "
                     f"({r.get('assimilation_top')!r}) | {f(ft.get('collapse_z'))} ({r.get('collapse_top')!r}) | "
                     f"{r.get('suspected_trigger')!r} | {f(r['seconds'])} |")
    return "\n".join(lines) + "\n"


def run_t2i_bench(zoo: Path, out: Path, *, budget: str, seed: int, calibrate: bool, holdout_attacks: list[str],
                  calibration_out: str | None, from_results: str | None, command: str,
                  progress: Callable[[str], None]) -> dict[str, Any]:
    from .reports.atomic import atomic_write_text
    from .scan_text_to_image import FEATURES

    scanned_by = None
    if from_results:
        earlier = json.loads(Path(from_results).read_text())
        records, scanned_by = earlier["records"], earlier["provenance"]
    else:
        records = scan_t2i_zoo(zoo, budget, seed, progress)
    attacks = {r["attack"] for r in records}
    held_attacks = [a for a in holdout_attacks if a in attacks] or [HOLDOUT_ATTACK]
    if calibrate:
        fit, held = split_diffusion(records, held_attacks)
        if not any(r["backdoored"] for r in fit) or all(r["backdoored"] for r in fit):
            raise ValueError("the fitting split needs both clean and backdoored models")
        cal = t2i_calibrate(fit, zoo, FEATURES)
        if calibration_out:
            atomic_write_text(calibration_out, cal.to_json())
        for r in records:
            r["split"] = "fit" if any(r is x for x in fit) else "held-out"
        evaluated = held
        split_desc = (f"held-out split: {len(held)} models (attack families {held_attacks} never used in fitting, "
                      f"plus alternate models of the others); fitted on {len(fit)} others")
    else:
        try:
            cal = load_calibration(family="text-to-image")
        except FileNotFoundError:
            cal = None
        evaluated = records
        split_desc = f"all {len(records)} models of the zoo, with the shipped calibration"
    for r in records:
        r["p"] = probability(r["features"], cal)[0] if cal else None
        r["verdict"] = status_for(r["p"], cal, False) if cal else None
    return write_results(out, zoo, command, scanned_by, cal.describe() if cal else None, split_desc,
                         metrics(evaluated, cal), records, to_markdown)
