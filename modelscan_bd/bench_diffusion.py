"""``modelscan-bd bench`` on a diffusion zoo (the manifest says ``"family": "diffusion"``).

Per model: the scanner's features and verdict, trigger fidelity (cosine and MSE of the
inverted delta* to the true noise-space shift), target MSE and SSIM of the recovered
target, the inverted trigger's success (share of images generated from eps + delta*
with the attack's own sampler that land on the true target, the zoo's ASR criterion),
seconds per model; Elijah run in the same process on the same model as the baseline.

``--calibrate`` fits the combiner on one split and reports on the other: the TrojDiff-
style attack is held out entirely, and every other clean and backdoored model
alternates between the splits. Numbers on the fitting split are never reported.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .bench import (_mean, _rate, auroc, entries_to_scan, fmt_cell, load_or_scan, log_loss, provenance_lines,
                    read_truth, tpr_at_fpr, write_results)
from .verdict import Calibration, probability, status_for

HOLDOUT_ATTACK = "trojdiff_blend"
SUCCESS_MSE = 0.05  # the zoo's attack-success criterion (per-image MSE in [0, 1] units)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 5) -> float:
    """Mean SSIM (Wang et al. 2004, uniform window) between two CxHxW images in [0, 1]."""
    a, b = a[None].double(), b[None].double()
    pool = lambda x: F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False)  # noqa: E731
    mu_a, mu_b = pool(a), pool(b)
    va, vb, cov = pool(a * a) - mu_a ** 2, pool(b * b) - mu_b ** 2, pool(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return float(s.mean())


def fidelity(delta: torch.Tensor, true_shift: torch.Tensor) -> dict[str, float]:
    d, r = delta.flatten().double(), true_shift.flatten().double()
    cos = float(d @ r / (d.norm() * r.norm() + 1e-12))
    return {"cosine": cos, "mse": float((d - r).pow(2).mean())}


def target_quality(recovered: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    a, b = (recovered.clamp(-1, 1) + 1) / 2, (target + 1) / 2
    return {"mse": float((a - b).pow(2).mean()), "ssim": ssim(a, b)}


def inverted_success(adapter, delta: torch.Tensor, truth: dict, seed: int, n: int, steps: dict) -> float:
    """Share of images from eps + delta (attack's sampler) within SUCCESS_MSE of the true target."""
    from .zoo.diffusion import target_mse

    g = torch.Generator().manual_seed(seed + 991)
    sampler = truth.get("sampler", "ddpm")
    x_T = torch.randn(n, *delta.shape, generator=g) + delta
    out = adapter.sample(x_T, sampler, steps[sampler], g)
    return float((target_mse(out, torch.tensor(truth["target_image"])) < SUCCESS_MSE).float().mean())


def scan_diffusion_zoo(zoo: Path, budget: str, seed: int, baselines: bool, progress: Callable[[str], None],
                       known: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """One record per model, in manifest order (``known``: earlier records reused by name)."""
    from .baselines_diffusion import elijah
    from .detectors.diffusion_inversion import SETTINGS
    from .scan import ScanConfig, scan

    torch.set_num_threads(1)
    s = SETTINGS[budget]
    steps = {"ddpm": s.ddpm_steps, "ddim": s.ddim_steps}
    records: list[dict[str, Any]] = []
    for entry in entries_to_scan(zoo, records, known, progress):
        truth = read_truth(zoo, entry)
        t = time.perf_counter()
        outcome = scan(str(zoo / entry["path"]), ScanConfig(budget=budget, seed=seed))
        seconds = time.perf_counter() - t
        res = (outcome.context.results.get("diffusion-inversion") if outcome.context else None) or {}
        rec: dict[str, Any] = {
            "name": entry["name"], "attack": truth.get("attack") or "clean", "backdoored": bool(truth["backdoored"]),
            "trigger": truth.get("trigger"), "target_name": truth.get("target_name"), "sampler": truth.get("sampler"),
            "seed": entry.get("seed"), "asr": truth.get("asr"), "hard": False,
            "features": outcome.report["verdict"].get("features") or {},
            "status": outcome.report["verdict"]["status"], "mode": res.get("mode"),
            "inverted_success_in_scan": res.get("inverted_success"),
            "seconds": round(seconds, 2), "peak_mb": outcome.report["timing"]["peak_memory_mb"],
            "steps": outcome.report["timing"]["steps"],
        }
        delta = res.get("delta")
        one_image = truth.get("target_class") is None  # a class target has no one image to compare with
        if truth["backdoored"] and delta is not None:
            true_shift, true_target = torch.tensor(truth["trigger_shift"]), torch.tensor(truth["target_image"])
            rec["trigger_fidelity"] = fidelity(delta, true_shift)
            if one_image:
                rec["target_quality"] = target_quality(res["target"], true_target)
                rec["trigger_success"] = inverted_success(outcome.adapter, delta, truth, seed, s.gen, steps)
        if baselines and outcome.adapter is not None:
            e = elijah(outcome.adapter, seed, budget)
            rec["elijah"] = {"score": e["score"], "dup_share": e["dup_share"], "seconds": round(e["seconds"], 2)}
            if truth["backdoored"]:
                rec["elijah"]["trigger_fidelity"] = fidelity(e["delta"], torch.tensor(truth["trigger_shift"]))
            if truth["backdoored"] and one_image:
                rec["elijah"]["target_quality"] = target_quality(e["target"], torch.tensor(truth["target_image"]))
                rec["elijah"]["trigger_success"] = inverted_success(outcome.adapter, e["delta"], truth, seed, s.gen,
                                                                    steps)
        records.append(rec)
        progress(f"  {rec['status']} features={rec['features']} ({seconds:.0f}s)")
    return records


def split_diffusion(records: list[dict], holdout_attacks: list[str]) -> tuple[list, list]:
    """Held out: the held-out attack families entirely, and every other remaining model
    (alternating within clean and within each attack) so that both splits hold both kinds."""
    fit, held = [], []
    counters: dict[str, int] = {}
    for r in records:
        if r["attack"] in holdout_attacks:
            held.append(r)
            continue
        k = counters.get(r["attack"], 0)
        counters[r["attack"]] = k + 1
        (fit if k % 2 == 0 else held).append(r)
    return fit, held


def calibrate_alternating(records: list[dict], zoo: Path, *, family: str, features: tuple[str, ...],
                          holdout_attacks: list[str], calibrate: bool, calibration_out: str | None,
                          budget: str, references: dict[str, int] | None = None
                          ) -> tuple[Calibration | None, list[dict], str]:
    """Fit on the alternating split (``split_diffusion``) or load the shipped calibration; mark
    every record's split, probability and verdict. Returns (calibration, evaluated records,
    split description). Shared by the diffusion and text-to-image benches."""
    from .bench import calibration_version, require_both_kinds
    from .reports.atomic import atomic_write_text
    from .verdict import fit_calibration, load_calibration

    if calibrate:
        fit, held = split_diffusion(records, holdout_attacks)
        require_both_kinds(fit, "hold out fewer attacks")
        labels = [int(r["backdoored"]) for r in fit]
        cal = fit_calibration([r["features"] for r in fit], labels, features,
                              version=calibration_version(zoo, budget, family),
                              description=f"fitted on {len(fit)} models of {family} zoo {zoo.name} "
                                          f"({sum(labels)} backdoored) scanned at budget {budget}", budget=budget,
                              references=references)
        # Refits on the same zoo and day (e.g. after a detector change) must not share a version.
        fitted = json.dumps([cal.mean, cal.scale, cal.weights, cal.bias, cal.references], sort_keys=True)
        cal.version += "-" + hashlib.sha256(fitted.encode()).hexdigest()[:6]
        if calibration_out:
            atomic_write_text(calibration_out, cal.to_json())
        for r in records:
            r["split"] = "fit" if any(r is x for x in fit) else "held-out"
        evaluated = held
        split_desc = (f"held-out split: {len(held)} models (attack families {holdout_attacks} never used in fitting, "
                      f"plus alternate models of the others); fitted on {len(fit)} others")
    else:
        try:
            cal = load_calibration(family=family, budget=budget)
        except FileNotFoundError:
            cal = None
        evaluated = records
        split_desc = f"all {len(records)} models of the zoo, with the shipped calibration"
    for r in records:
        r["p"] = probability(r["features"], cal)[0] if cal else None
        r["verdict"] = status_for(r["p"], cal, False) if cal else None
    return cal, evaluated, split_desc


def detection_metrics(records: list[dict], cal: Calibration | None) -> tuple[list[bool], dict[str, Any]]:
    """Whether each model is flagged, and the detection numbers every family's bench reports."""
    labels = [int(r["backdoored"]) for r in records]
    probs = [probability(r["features"], cal)[0] if cal else 0.5 for r in records]
    flagged = [cal is not None and p >= cal.backdoored_threshold for p in probs]
    return flagged, {
        "models": len(records), "backdoored": sum(labels), "clean": len(labels) - sum(labels),
        "auroc": auroc(probs, labels) if cal else None, "tpr_at_5fpr": tpr_at_fpr(probs, labels) if cal else None,
        "log_loss": log_loss(probs, labels) if cal else None,
        "accuracy": sum(f == bool(y) for f, y in zip(flagged, labels)) / max(1, len(labels)) if cal else None,
        "tpr": _rate([f for f, y in zip(flagged, labels) if y]), "fpr": _rate([f for f, y in zip(flagged, labels) if not y]),
    }


def header_lines(result: dict[str, Any], title: str) -> list[str]:
    """The provenance lines at the top of the diffusion and text-to-image results files."""
    p, cal = result["provenance"], result["calibration"]
    return [f"# {title}: {Path(p['zoo']).name}", "", *provenance_lines(p),
            f"- calibration: {cal['version'] if cal else 'none'} ({cal['description'] if cal else 'not fitted'})",
            f"- evaluated on: {result['split']}", ""]


def metrics(records: list[dict], cal: Calibration | None) -> dict[str, Any]:
    labels = [int(r["backdoored"]) for r in records]
    flagged, out = detection_metrics(records, cal)
    bd = [r for r in records if r["backdoored"]]
    out |= {
        "auroc_dup_share_alone": auroc([r["features"].get("dup_share") or 0.0 for r in records], labels),
        "auroc_structured_dup_alone": auroc([r["features"].get("structured_dup") or 0.0 for r in records], labels),
        # a low slope is suspicious; records from before detector version 4 lack it
        "auroc_noise_scale_slope_alone": (auroc([-r["features"]["noise_scale_slope"] for r in records], labels)
                                          if all(r["features"].get("noise_scale_slope") is not None for r in records)
                                          else None),
        "trigger_cosine": _mean([r.get("trigger_fidelity", {}).get("cosine") for r in bd]),
        "trigger_mse": _mean([r.get("trigger_fidelity", {}).get("mse") for r in bd]),
        "target_mse": _mean([r.get("target_quality", {}).get("mse") for r in bd]),
        "target_ssim": _mean([r.get("target_quality", {}).get("ssim") for r in bd]),
        "trigger_success": _mean([r.get("trigger_success") for r in bd]),
        "seconds_per_model": _mean([r["seconds"] for r in records]),
        "peak_mb_max": max((r["peak_mb"] or 0 for r in records), default=None),
        "per_attack": {},
    }
    for attack in sorted({r["attack"] for r in records}):
        rs = [(f, r) for f, r in zip(flagged, records) if r["attack"] == attack]
        out["per_attack"][attack] = {
            "models": len(rs), "detection_rate": _rate([f for f, _ in rs]),
            "trigger_cosine": _mean([r.get("trigger_fidelity", {}).get("cosine") for _, r in rs]),
            "target_ssim": _mean([r.get("target_quality", {}).get("ssim") for _, r in rs]),
            "trigger_success": _mean([r.get("trigger_success") for _, r in rs]),
            "elijah_trigger_success": _mean([r.get("elijah", {}).get("trigger_success") for _, r in rs]),
        }
    el = [r for r in records if "elijah" in r]
    if el:
        lab = [int(r["backdoored"]) for r in el]
        ebd = [r["elijah"] for r in el if r["backdoored"]]
        out["elijah"] = {
            "auroc": auroc([r["elijah"]["score"] for r in el], lab),
            "auroc_dup_share": auroc([r["elijah"]["dup_share"] for r in el], lab),
            "trigger_cosine": _mean([e.get("trigger_fidelity", {}).get("cosine") for e in ebd]),
            "trigger_mse": _mean([e.get("trigger_fidelity", {}).get("mse") for e in ebd]),
            "target_mse": _mean([e.get("target_quality", {}).get("mse") for e in ebd]),
            "target_ssim": _mean([e.get("target_quality", {}).get("ssim") for e in ebd]),
            "trigger_success": _mean([e.get("trigger_success") for e in ebd]),
            "seconds_per_model": _mean([r["elijah"]["seconds"] for r in el]),
        }
    return out


def to_markdown(result: dict[str, Any]) -> str:
    m = result["metrics"]
    f = fmt_cell
    lines = [*header_lines(result, "Diffusion benchmark"),
             "| method | AUROC | accuracy | TPR | FPR | trigger cos | trigger MSE | target MSE | target SSIM | "
             "inverted-trigger success | s/model |", "|---|---|---|---|---|---|---|---|---|---|---|",
             f"| modelscan-bd (PureDiffusion-style) | {f(m['auroc'])} | {f(m['accuracy'])} | {f(m['tpr'])} | "
             f"{f(m['fpr'])} | {f(m['trigger_cosine'])} | {f(m['trigger_mse'])} | {f(m['target_mse'])} | "
             f"{f(m['target_ssim'])} | {f(m['trigger_success'])} | {f(m['seconds_per_model'])} |"]
    if "elijah" in m:
        e = m["elijah"]
        lines.append(f"| Elijah (t = T only, fixed noise) | {f(e['auroc'])} | - | - | - | {f(e['trigger_cosine'])} | "
                     f"{f(e['trigger_mse'])} | {f(e['target_mse'])} | {f(e['target_ssim'])} | "
                     f"{f(e['trigger_success'])} | {f(e['seconds_per_model'])} (extra) |")
    lines += ["", f"Single statistics: near-duplicate share AUROC {f(m['auroc_dup_share_alone'])}, structured "
              f"near-duplicate share AUROC {f(m['auroc_structured_dup_alone'])}, noise-scale slope (low is "
              f"suspicious) AUROC {f(m.get('auroc_noise_scale_slope_alone'))}. Log loss {f(m['log_loss'])}; "
              f"peak memory {f(m['peak_mb_max'])} MB.", "",
              "| attack | models | detection rate | trigger cos | target SSIM | inverted-trigger success | Elijah success |",
              "|---|---|---|---|---|---|---|"]
    for attack, a in m["per_attack"].items():
        lines.append(f"| {attack} | {a['models']} | {f(a['detection_rate'])} | {f(a['trigger_cosine'])} | "
                     f"{f(a['target_ssim'])} | {f(a['trigger_success'])} | {f(a['elijah_trigger_success'])} |")
    lines += ["", "Per model (all splits; verdict with the calibration above):", "",
              "| model | attack | ASR | split | p | verdict | structured dup | noise-scale slope | TV log ratio | "
              "loss reduction | trigger cos | inverted success | Elijah success | s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["records"]:
        ft = r["features"]
        lines.append(f"| {r['name']} | {r['attack']} | {f(r['asr'])} | {r.get('split', '-')} | {f(r.get('p'))} | "
                     f"{r.get('verdict') or '-'} | {f(ft.get('structured_dup'))} | {f(ft.get('noise_scale_slope'))} | "
                     f"{f(ft.get('tv_log_ratio'))} | "
                     f"{f(ft.get('loss_reduction'))} | {f(r.get('trigger_fidelity', {}).get('cosine'))} | "
                     f"{f(r.get('trigger_success'))} | {f(r.get('elijah', {}).get('trigger_success'))} | "
                     f"{f(r['seconds'])} |")
    return "\n".join(lines) + "\n"


def run_diffusion_bench(zoo: Path, out: Path, *, budget: str, seed: int, baselines: bool, calibrate: bool,
                        holdout_attacks: list[str], holdout_seeds: list[int], calibration_out: str | None,
                        from_results: str | None, command: str, progress: Callable[[str], None]) -> dict[str, Any]:
    from .scan_diffusion import FEATURES, REFERENCES

    del holdout_seeds  # every diffusion zoo model has its own seed; the split alternates instead
    records, scanned_by = load_or_scan(from_results,
                                       lambda known: scan_diffusion_zoo(zoo, budget, seed, baselines, progress, known),
                                       budget)
    attacks = {r["attack"] for r in records}
    held_attacks = [a for a in holdout_attacks if a in attacks] or [HOLDOUT_ATTACK]
    cal, evaluated, split_desc = calibrate_alternating(records, zoo, family="diffusion", features=FEATURES,
                                                       holdout_attacks=held_attacks, calibrate=calibrate,
                                                       calibration_out=calibration_out, budget=budget,
                                                       references=REFERENCES)
    return write_results(out, zoo, command, scanned_by, cal.describe() if cal else None, split_desc,
                         metrics(evaluated, cal), records, to_markdown, budget=budget, seed=seed)

