"""``modelscan-bd bench-pool``: judge the records of several classifier bench runs together.

A zoo of a few models says little on its own; the benchmark's held-out numbers often pool
several small zoos (other seeds, other recipes, GPU and CPU builds). This rescores the saved
per-model records (``results.json`` of ``bench``) under one calibration, the shipped one of the
records' budget unless ``--calibration`` names another, without scanning anything: each model is
judged by the combiner and cuts for its own class count, as a scan would judge it. ``--without``
removes features (the scanner before a detector, from the same scans) and reports both side by
side. The output is a bench result like any other (JSON + Markdown, with the sources' provenance).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .bench import (_json_default, _mean, fmt_cell, judge_for, metrics, model_probability, read_json, read_results_at,
                    record_architecture, records_budget, run_provenance, write_result_files)
from .errors import UsageError
from .verdict import Calibration, load_calibration


def pool_records(files: list[str], budget: str | None, classes: int | None) -> tuple[list[dict], list[dict], str]:
    """The records of every file, each named ``zoo/model`` and carrying its class count, the sources'
    provenance, and the budget they share. A file's class count: its records', else its
    provenance's, else ``classes``; a record without one is a usage error (it picks the combiner)."""
    if not files:
        raise UsageError("bench-pool needs at least one bench results.json")
    if budget is None:  # the first file's; every other file must match it (read_results_at)
        first = read_json(Path(files[0]), "bench-pool file")
        budget = records_budget(first.get("provenance") or {}) if isinstance(first, dict) else "standard"
    records, sources, seen = [], [], {}
    for path in files:
        result = read_results_at(path, budget, "bench-pool")
        prov = result["provenance"]
        zoo = Path(prov.get("zoo") or path).name
        key = prov.get("zoo_manifest_sha256") or path
        if key in seen:
            raise UsageError(f"{path} holds the same zoo as {seen[key]} (manifest {key}): pooled twice, its models "
                             "would count twice")
        seen[key] = path
        file_classes = prov.get("num_classes") or classes
        for r in result["records"]:
            if not isinstance(r, dict) or "features" not in r or "backdoored" not in r:
                raise UsageError(f"{path} is not a classifier bench's results (a record without features)")
            n = r.get("num_classes") or file_classes
            if n is None:
                raise UsageError(f"{path} does not record its models' class count: pass --classes N")
            records.append({**r, "name": f"{zoo}/{r['name']}", "num_classes": int(n)})
        sources.append({"file": str(path), "zoo": zoo, "zoo_manifest_sha256": prov.get("zoo_manifest_sha256"),
                        "models": len(result["records"]), "date": prov.get("date"), "command": prov.get("command"),
                        "machine": prov.get("machine")})
    return records, sources, budget


def without(records: list[dict], features: list[str]) -> list[dict]:
    """The records as the scanner would have judged them without ``features`` (set to missing,
    which the combiner fills and a reference test skips)."""
    return [{**r, "features": {**r["features"], **{f: None for f in features}}} for r in records]


def per_model(records: list[dict], cal: Calibration, features_off: list[str]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        judge = judge_for(r, cal)
        p = model_probability(r, judge)
        backdoored, suspicious, _ = judge.cuts_for(r["num_classes"], record_architecture(r))
        row = {"name": r["name"], "classes": r["num_classes"], "attack": r["attack"], "backdoored": r["backdoored"],
               "hard": r.get("hard", False), "asr": r.get("asr"), "p": round(p, 4),
               "verdict": "BACKDOORED" if p >= backdoored else "SUSPICIOUS" if p >= suspicious else "CLEAN"}
        if features_off:
            row["p_without"] = round(model_probability(without([r], features_off)[0], judge), 4)
        if "neural_cleanse" in r:
            row["neural_cleanse"] = round(r["neural_cleanse"]["score"], 4)
        rows.append(row)
    return rows


def run_pool(files: list[str], out: Path, *, budget: str | None, classes: int | None, calibration: str | None,
             features_off: list[str], min_asr: float | None, command: str) -> dict[str, Any]:
    records, sources, budget = pool_records(files, budget, classes)
    known = sorted({k for r in records for k in r["features"]})
    unknown = [f for f in features_off if f not in known]
    if unknown:
        raise UsageError(f"--without: no record has the feature {', '.join(unknown)} (they have: {', '.join(known)})")
    cal = load_calibration(calibration, budget=budget)
    if min_asr is not None:
        kept = [r for r in records if not r["backdoored"] or (r.get("asr") or 0.0) >= min_asr]
        dropped = len(records) - len(kept)
        records = kept
    split = f"{len(records)} models pooled from {len(sources)} bench runs, judged by each model's class count"
    if min_asr is not None:
        split += f"; {dropped} backdoored models below attack success {min_asr:g} left out"
    result = {
        "provenance": {**run_provenance(command), "budget": budget, "sources": sources,
                       "records_sha256": hashlib.sha256(json.dumps(records, sort_keys=True, default=_json_default)
                                                        .encode()).hexdigest()[:16]},
        "calibration": cal.describe(), "split": split, "metrics": metrics(records, cal),
        "without": features_off,
        "metrics_without": metrics(without(records, features_off), cal) if features_off else None,
        "per_model": per_model(records, cal, features_off), "records": records,
    }
    result["markdown"] = pool_markdown(result)
    write_result_files(out, result)
    return result


def _counts(m: dict[str, Any]) -> tuple[str, str]:
    """TPR and FPR as counts ("5/6"): pooled zoos are small, and a rate hides how small."""
    tp, fp = (round((m[k] or 0) * n) for k, n in (("tpr", m["backdoored"]), ("fpr", m["clean"])))
    return f"{tp}/{m['backdoored']}", f"{fp}/{m['clean']}"


def pool_markdown(result: dict[str, Any]) -> str:
    p, m = result["provenance"], result["metrics"]
    f = fmt_cell
    lines = [f"# Pooled benchmark: {len(p['sources'])} bench runs", "", f"- date: {p['date']}",
             f"- machine: {p['machine']}", f"- command: `{p['command']}`", f"- scan budget: {p['budget']}",
             f"- calibration: {result['calibration']['version']} ({result['calibration']['description']})",
             f"- evaluated on: {result['split']}", "", "| source | zoo manifest sha256 | models | scanned |",
             "|---|---|---|---|"]
    lines += [f"| `{s['file']}` | `{s['zoo_manifest_sha256']}` | {s['models']} | {s['date']} |" for s in p["sources"]]
    lines += ["", "| method | AUROC | TPR@5%FPR | TPR | FPR | target acc | s/model |", "|---|---|---|---|---|---|---|"]

    def row(label: str, x: dict[str, Any]) -> str:
        tp, fp = _counts(x)
        return (f"| {label} | {f(x['auroc'])} | {f(x['tpr_at_5fpr'])} | {tp} | {fp} | {f(x['target_accuracy'])} | "
                f"{f(x['seconds_per_model'])} |")

    lines.append(row("modelscan-bd", m))
    if result["metrics_without"]:
        lines.append(row(f"modelscan-bd without {', '.join(result['without'])} (same scans)",
                         result["metrics_without"]))
    for base, label in (("neural_cleanse", "Neural Cleanse (all labels, AI > 2)"),
                        ("ebyd_variance", "EBYD variance (> 0.01)")):
        if base in m:
            b = {**m[base], "backdoored": sum(1 for r in result["records"] if base in r and r["backdoored"]),
                 "clean": sum(1 for r in result["records"] if base in r and not r["backdoored"])}
            lines.append(row(f"{label}, {b['backdoored'] + b['clean']} models", b))
    lines += ["", f"Hard clean models flagged: {f(m['hard_clean_fpr'])}; peak memory {f(m['peak_mb_max'])} MB.", "",
              "| attack | models | detection rate | AUROC vs clean | trigger success | mask IoU |",
              "|---|---|---|---|---|---|"]
    for attack, a in m["per_attack"].items():
        lines.append(f"| {attack} | {a['models']} | {f(a['detection_rate'])} | {f(a['auroc_vs_clean'])} | "
                     f"{f(a['trigger_success'])} | {f(a['trigger_iou'])} |")
    off = " | p without" if result["metrics_without"] else ""
    lines += ["", f"| model | classes | truth | attack success | p{off} | verdict | Neural Cleanse |",
              "|---|---|---|---|---|---|---|" + ("---|" if off else "")]
    for r in result["per_model"]:
        truth = ("hard clean" if r["hard"] else "clean") if not r["backdoored"] else r["attack"]
        extra = f" | {f(r['p_without'])}" if off else ""
        lines.append(f"| {r['name']} | {r['classes']} | {truth} | {f(r['asr'])} | {f(r['p'])}{extra} | "
                     f"{r['verdict']} | {f(r.get('neural_cleanse'))} |")
    secs = _mean([r.get("seconds") for r in result["records"]])
    lines += ["", f"Seconds per model are the scans' own ({f(secs)} on average), from the machines and dates above."]
    return "\n".join(lines) + "\n"
