"""Benchmark of the merge gate on a merging zoo (``modelscan-bd bench ZOO`` on a zoo built
with ``zoo build merging``).

Merge groups: each backdoored candidate with ``group_size - 1`` clean peers (cycling
through the clean fine-tunes), plus clean-only groups; every group is gated once per
merge method (task arithmetic, TIES, DARE). Per candidate instance we record:

* "before merging": max of its own scan and its task-vector exposures (what the gate
  knows without merging);
* "after merging" (per method): the gate's candidate score, which adds leave-one-out
  attribution of a flagged merge;
* the gate's decision (block) and the weight-space score;
* the merged model's verdict and the backdoor's real attack success rate after the merge.

Nothing is fitted here: own scans use the shipped classifier calibration, variants and
merges the merging calibration, so the zoo is held out when that calibration was fitted on
another zoo. ``calibrate`` makes this zoo that other zoo: the merging calibration is fitted
on its variants and merges, labelled by the real attack success of the backdoor each one
carries (``GroundTruth``), and the run's decisions are then marked as fitting-zoo numbers.
Records are appended to ``records.jsonl`` as they finish, so an interrupted run resumes where it stopped; every
scan's summary (with its features) is kept in ``scan-cache.json``, so a re-run under
another calibration re-decides from the cached scans without scanning again.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import UsageError
from .bench import auroc, provenance, read_jsonl, read_manifest, tpr_at_fpr
from .gate import GateOptions, load_member, run_gate, with_state
from .gate_calibration import fit_merging_calibration, fitting_summary
from .verdict import load_calibration
from .gate_config import parse_config
from .merging import merge_state_dicts, scaled, task_vector
from .reports.atomic import atomic_write_text
from .zoo.save import load_attack

METHOD_SETTINGS = {  # method -> (weight per candidate, density)
    "task_arithmetic": (0.5, 1.0),
    "ties": (1.0, 0.5),
    "dare_linear": (0.5, 0.5),
}


def groups_for(clean: list[str], backdoored: list[str], size: int, n_clean_groups: int) -> list[list[str]]:
    bd = [[b] + [clean[(j * (size - 1) + i) % len(clean)] for i in range(size - 1)] for j, b in enumerate(backdoored)]
    cl = [[clean[(k * size + 1 + i) % len(clean)] for i in range(size)] for k in range(n_clean_groups)]
    # A clean-only group early, so that a run cut short still measures false blocks on merges.
    return bd[:3] + cl[:1] + bd[3:] + cl[1:]


class GroundTruth:
    """The zoo's ground truth at work: the real attack success rate of a candidate's
    backdoor in any model built from the base (a merge, an amplified variant), on the zoo's
    clean images. Used for the records and as the merging calibration's labels."""

    def __init__(self, zoo: Path, entries: dict[str, dict]):
        import numpy as np

        self.zoo, self.entries = zoo, entries
        self.base = load_member(str(zoo / "models" / "base"), lambda m: None)
        self.base_state = self.base.state  # a property that clones every tensor: read it once
        self._states: dict[str, dict[str, torch.Tensor]] = {}
        with np.load(zoo / "clean-data.npz") as npz:
            self.x = torch.from_numpy(npz["images"]).permute(0, 3, 1, 2).float() / 255
            self.y = torch.from_numpy(npz["labels"]).long()

    def state(self, name: str) -> dict[str, torch.Tensor]:
        if name not in self._states:
            self._states[name] = load_member(str(self.zoo / self.entries[name]["path"]), lambda m: None).state
        return self._states[name]

    @torch.no_grad()
    def asr(self, name: str, state: dict[str, torch.Tensor]) -> float:
        """Attack success of ``name``'s backdoor in the model with weights ``state``."""
        attack = load_attack(self.zoo / self.entries[name]["truth_dir"])
        keep = attack.asr_mask(self.y)
        pred = with_state(self.base.adapter, state, name).predict(attack.apply_trigger(self.x[keep]))
        return float((pred == attack.asr_target(self.y[keep])).float().mean())

    def merged_asr(self, group: list[str], method: str, seed: int) -> float | None:
        """The real attack success rate of the merge, for the group's backdoored candidate."""
        bd = [n for n in group if self.entries[n]["backdoored"]]
        if not bd:
            return None
        weight, density = METHOD_SETTINGS[method]
        cfg = parse_config({"models": [{"model": n, "parameters": {"weight": weight, "density": density}}
                                       for n in group], "base_model": "base", "merge_method": method})
        merged = merge_state_dicts(self.base_state, [self.state(n) for n in group], cfg.spec, seed=seed)
        return self.asr(bd[0], merged)

    def exposure_asr(self, name: str, exposure: dict[str, Any]) -> float | None:
        """The real attack success rate of a backdoored candidate's task-vector exposure."""
        if not self.entries[name]["backdoored"]:
            return None
        tau = task_vector(self.base_state, self.state(name))
        return self.asr(name, scaled(self.base_state, tau, exposure["lambda"], exposure.get("density", 1.0)))


# DARE merges are judged on their expected merge, which for the bench's settings is the
# task-arithmetic merge of the same group: fitting on it again would count it twice.
FIT_METHODS = ("task_arithmetic", "ties")


def fit_rows(records: list[dict]) -> list[dict[str, Any]]:
    """The merging calibration's rows from a bench run: every usable amplified/trimmed
    variant (once per candidate) and every usable task-arithmetic and TIES merge, each
    labelled by the real attack success of the backdoor it carries (None: no backdoor)."""
    rows, seen = [], set()
    for r in records:
        for c in r["candidates"]:
            for kind, feats in (c.get("exposure_features") or {}).items():
                if (c["name"], kind) in seen or not feats or "not usable" in c["exposure_status"][kind]:
                    continue
                seen.add((c["name"], kind))
                if c["backdoored"] and kind not in (c.get("exposure_asr") or {}):
                    raise ValueError(f"the record of {c['name']} has no attack success for its {kind} variant "
                                     "(a run from before the bench recorded it): run the bench again")
                rows.append({"item": f"{c['name']} {kind}", "features": feats,
                             "asr": (c.get("exposure_asr") or {}).get(kind)})
        m = r["merged"]
        key = (r["method"], tuple(r["group"]))
        if r["method"] in FIT_METHODS and m.get("usable", True) is not False and m.get("features") and key not in seen:
            seen.add(key)
            rows.append({"item": f"{r['method']} merge of {'+'.join(r['group'])}", "features": m["features"],
                         "asr": r["merged_asr"]})
    return rows


def run_merging_bench(zoo: Path, out: Path, *, budget: str = "fast", seed: int = 0, command: str = "",
                      group_size: int = 3, n_clean_groups: int = 2, clean_budget: int = 150,
                      methods: tuple[str, ...] = tuple(METHOD_SETTINGS), max_groups: int | None = None,
                      threads: int | None = None, variant_calibration: str | None = None,
                      deadline: float | None = None, calibrate: bool = False, calibration_out: str | None = None,
                      extra_fit_rows: list[dict[str, Any]] | None = None,
                      progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """threads: torch threads for this run (None: leave them to the caller); deadline: a
    ``time.time()`` after which no new group is started (a time-boxed run); calibrate: this
    zoo is a fitting zoo: fit the merging calibration on its variants and merges (``fit_rows``)
    and write it to ``calibration_out`` (the decisions recorded here are then not held-out numbers);
    extra_fit_rows: the rows of other fitting zoos' ``fit-rows.jsonl``, fitted on together with this one's."""
    if threads:
        torch.set_num_threads(threads)
    manifest = read_manifest(zoo)
    entries = {m["name"]: m for m in manifest["models"]}
    cands = [m for m in manifest["models"] if m.get("role") == "candidate"]
    clean = [m["name"] for m in cands if not m["backdoored"]]
    bd = [m["name"] for m in cands if m["backdoored"]]
    groups = groups_for(clean, bd, group_size, n_clean_groups)[:max_groups]  # max_groups: a time-boxed run
    out.mkdir(parents=True, exist_ok=True)
    log = out / "records.jsonl"
    options = GateOptions(clean_data=str(zoo / "clean-data.npz"), clean_budget=clean_budget, budget=budget,
                          seed=seed, leave_one_out="always", variant_calibration=variant_calibration,
                          scan_safe_merge=False)  # per-candidate metrics do not need it; it would double the scans
    cal_version = load_calibration(options.variant_calibration_path()).version
    done = {}
    if log.exists():
        for r in read_jsonl(log, "bench log (delete it to start over)"):
            if r.get("variant_calibration") == cal_version:  # records under another calibration are re-decided
                done[(r["group_index"], r["method"])] = r
    cache_file = out / "scan-cache.json"
    cache: dict = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    truth = GroundTruth(zoo, entries)
    stopped = False
    for gi, group in enumerate(groups):
        for method in methods:
            if (gi, method) in done:
                continue
            if deadline is not None and time.time() > deadline:
                stopped = True
                break
            weight, density = METHOD_SETTINGS[method]
            raw = {"models": [{"model": str(zoo / entries[n]["path"]),
                               "parameters": {"weight": weight, "density": density}} for n in group],
                   "base_model": str(zoo / "models" / "base"), "merge_method": method}
            started = time.perf_counter()
            report = run_gate(parse_config(raw, f"group {gi}"), options, progress, cache=cache).report
            wall = time.perf_counter() - started
            cache_file.write_text(json.dumps(cache))
            m = report["merged"]
            rec = {"group_index": gi, "group": group, "method": method, "wall_seconds": round(wall, 2),
                   "variant_calibration": cal_version,
                   "decision_seconds": round(_decision_seconds(report), 2),
                   "merged": {"status": m["status"], "probability": m["probability"], "usable": m.get("usable"),
                              "clean_accuracy": m.get("clean_accuracy"), "features": m.get("features"),
                              "trigger": m.get("trigger"), "trigger_transfer": m.get("trigger_transfer"),
                              "differential_trigger": m.get("differential_trigger")},
                   "merged_asr": truth.merged_asr(group, method, seed), "exit_code": report["exit_code"],
                   "candidates": []}
            for name, c in zip(group, report["candidates"]):
                pre = max([c["scan"]["probability"] or 0.0] + [e["probability"] or 0.0 for e in c["exposures"]
                                                                if e.get("usable", True)])
                rec["candidates"].append({
                    "name": name, "backdoored": entries[name]["backdoored"], "attack": entries[name].get("attack"),
                    "verdict": c["verdict"], "score": c["score"], "pre_merge_score": pre,
                    "own": c["scan"]["probability"], "own_status": c["scan"]["status"],
                    "exposures": {e["kind"]: e["probability"] for e in c["exposures"]},
                    "exposure_status": {e["kind"]: e["status"] + ("" if e.get("usable", True) else " (not usable)")
                                        for e in c["exposures"]},
                    "exposure_features": {e["kind"]: e.get("features") for e in c["exposures"]},
                    "exposure_accuracy": {e["kind"]: e.get("clean_accuracy") for e in c["exposures"]},
                    "exposure_asr": {e["kind"]: truth.exposure_asr(name, e) for e in c["exposures"]}
                    if entries[name]["backdoored"] else {},
                    "own_features": c["scan"].get("features"),
                    "differential_trigger": c.get("differential_trigger"),
                    "base_checks": {"own": c["scan"].get("base_check"),
                                    **{e["kind"]: e.get("base_check") for e in c["exposures"]}},
                    "attribution_detail": {k: v for k, v in c["attribution"].items() if k != "status"},
                    "weight_space": c["weight_space"].get("score", 0.0),
                    "weight_space_outlier": c["weight_space"].get("outlier", False),
                    "attribution": c["attribution"]["score"], "attributed": c["attribution"]["attributed"],
                    "reasons": c["reasons"]})
            with log.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            done[(gi, method)] = rec
            progress(f"group {gi} {method}: " + ", ".join(f"{x['name']}={x['verdict']}" for x in rec["candidates"])
                     + f"; merge {rec['merged']['status']}, ASR {rec['merged_asr']}, {wall:.0f} s")
        if stopped:
            break
    records = [done[k] for k in sorted(done) if k[0] < len(groups)]
    cal = load_calibration(options.variant_calibration_path())
    result = {"provenance": {**provenance(zoo, command), "shared_machine": True, "budget": budget,
                             "clean_budget": clean_budget, "group_size": group_size,
                             "groups": len({r["group_index"] for r in records}), "groups_planned": len(groups),
                             "stopped_at_deadline": stopped,
                             "variant_calibration": {**cal.describe(), "threshold": cal.backdoored_threshold}},
              "zoo": {"models": len(manifest["models"]), "clean_candidates": len(clean),
                      "backdoored_candidates": len(bd), "rejected": len(manifest.get("rejected", [])),
                      "seconds": manifest.get("seconds")},
              "method_settings": {m: {"weight": w, "density": d} for m, (w, d) in METHOD_SETTINGS.items()},
              "metrics": merging_metrics(records),
              "records": records}
    if calibrate:
        if stopped:
            raise UsageError("the run stopped at its deadline: fit the merging calibration on a complete run "
                             "(rerun to resume it)")
        rows = [{**r, "zoo": f"seed {manifest.get('seed')} ({result['provenance']['zoo_manifest_sha256']})"}
                for r in fit_rows(records)]
        (out / "fit-rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        extra = extra_fit_rows or []
        zoos = sorted({r.get("zoo") or "unnamed" for r in extra})
        also = f" and {len(extra)} rows of other fitting zoos ({'; '.join(zoos)})" if extra else ""
        fitted = fit_merging_calibration(rows + extra, (
            f"fitted on {len(rows)} variants and merges of the merging zoo seed {manifest.get('seed')} (manifest "
            f"{result['provenance']['zoo_manifest_sha256']}; {len(clean)} clean, {len(bd)} backdoored candidates; "
            f"amplified variants, task-arithmetic and TIES merges){also}; label: the carried backdoor's ASR >= 0.5; "
            f"command: {command}"))
        if calibration_out:
            atomic_write_text(calibration_out, fitted.to_json())
        result["fitted_calibration"] = {"version": fitted.version, "threshold": fitted.backdoored_threshold,
                                        "fitting_rows": fitting_summary(rows + extra, fitted),
                                        "written_to": calibration_out}
    result["markdown"] = to_markdown(result)
    (out / "results.json").write_text(json.dumps({k: v for k, v in result.items() if k != "markdown"}, indent=2) + "\n")
    (out / "results.md").write_text(result["markdown"])
    return result


def _decision_seconds(report: dict[str, Any]) -> float:
    """What one uncached gate decision costs: every scan it used, plus loading and merging."""
    scans = [report["base"]["scan"], report["merged"]]
    for c in report["candidates"]:
        scans += [c["scan"], *c["exposures"]]
    safe = report["merged"].get("safe_merge")
    if safe and safe["status"] != "NONE":
        scans.append(safe)
    steps = report["timing"]["steps"]
    # Triggers inverted against the base are cached like scans: count what each one cost.
    inverted = [c.get("differential_trigger") for c in report["candidates"]] + [report["merged"].get(
        "differential_trigger")]
    return sum(s["seconds"] for s in scans) + sum(d.get("seconds", 0.0) for d in inverted if d) + sum(
        steps.get(k, 0.0) for k in ("load", "weight_space", "base_check", "attribution"))


def _block_rates(rows: list[dict]) -> dict[str, Any]:
    pos = [r for r in rows if r["backdoored"]]
    neg = [r for r in rows if not r["backdoored"]]
    return {"blocked_backdoored": _share([r["verdict"] == "block" for r in pos]),
            "blocked_clean": _share([r["verdict"] == "block" for r in neg]),
            "warned_clean": _share([r["verdict"] == "warn" for r in neg]), "n_backdoored": len(pos),
            "n_clean": len(neg)}


def _share(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def _scores(rows: list[dict], key: str) -> dict[str, Any]:
    s = [float(r[key] or 0.0) for r in rows]
    y = [int(r["backdoored"]) for r in rows]
    a, t = auroc(s, y), tpr_at_fpr(s, y, 0.05)
    return {"auroc": None if a is None else round(a, 4), "tpr_at_5fpr": None if t is None else round(t, 4)}


def merging_metrics(records: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    methods = sorted({r["method"] for r in records})
    # Before merging: one instance per distinct candidate (the pre-merge checks do not depend on peers).
    seen = {}
    for r in records:
        for c in r["candidates"]:
            seen.setdefault(c["name"], c)
    uniq = list(seen.values())
    out["before_merging"] = {"candidates": len(uniq), "own_scan": _scores(uniq, "own"),
                             "own_and_exposures": _scores(uniq, "pre_merge_score"),
                             "weight_space": _scores(uniq, "weight_space"),
                             "by_attack": _by_attack(uniq, "pre_merge_score")}
    for m in methods:
        rows = [c for r in records if r["method"] == m for c in r["candidates"]]
        recs = [r for r in records if r["method"] == m]
        with_bd = [r for r in recs if any(c["backdoored"] for c in r["candidates"])]
        clean_only = [r for r in recs if not any(c["backdoored"] for c in r["candidates"])]
        out[m] = {"instances": len(rows), "gate_score": _scores(rows, "score"), "decisions": _block_rates(rows),
                  "by_attack": _by_attack(rows, "score"),
                  "merge_flagged_with_backdoored_candidate": _share([_merge_flagged(r) for r in with_bd]),
                  "merge_flagged_clean_only": _share([_merge_flagged(r) for r in clean_only]),
                  "merge_specific_trigger_with_backdoored_candidate": _share(
                      [bool((r["merged"].get("trigger_transfer") or {}).get("merge_specific")) for r in with_bd]),
                  "merge_specific_trigger_clean_only": _share(
                      [bool((r["merged"].get("trigger_transfer") or {}).get("merge_specific")) for r in clean_only]),
                  "merged_asr_mean": _mean([r["merged_asr"] for r in with_bd]),
                  "decision_seconds_mean": _mean([r["decision_seconds"] for r in recs]),
                  "decision_seconds_max": max([r["decision_seconds"] for r in recs], default=None)}
    return out


def _merge_flagged(r: dict) -> bool:
    """The merge is flagged: a BACKDOORED/SUSPICIOUS verdict on a usable merge, or a merge-specific trigger."""
    m = r["merged"]
    return m.get("usable", True) is not False and (
        m["status"] in ("BACKDOORED", "SUSPICIOUS") or bool((m.get("trigger_transfer") or {}).get("merge_specific")))


def _by_attack(rows: list[dict], key: str) -> dict[str, Any]:
    out = {}
    for kind in sorted({r["attack"] for r in rows if r["backdoored"]}):
        sub = [r for r in rows if not r["backdoored"] or r["attack"] == kind]
        pos = [r for r in sub if r["backdoored"]]
        out[kind] = {**_scores(sub, key), "blocked": _share([r.get("verdict") == "block" for r in pos]),
                     "n": len(pos)}
    return out


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 4) if xs else None


def to_markdown(result: dict[str, Any]) -> str:
    p, m = result["provenance"], result["metrics"]
    lines = ["# Merge gate benchmark", "",
             f"- date: {p['date']}", f"- command: `{p['command']}`", f"- machine: {p['machine']}",
             f"- torch threads: {p['torch_threads']}; scan budget {p['budget']}, {p['clean_budget']} clean images",
             f"- zoo manifest sha256: {p['zoo_manifest_sha256']}; {result['zoo']['clean_candidates']} clean and "
             f"{result['zoo']['backdoored_candidates']} backdoored candidates ({result['zoo']['rejected']} rejected)",
             f"- {p['groups']} merge groups of {p['group_size']} candidates (each backdoored candidate with clean peers, "
             f"plus clean-only groups); settings {json.dumps(result['method_settings'])}",
             (f"- **fitting zoo**: merging calibration {result['fitted_calibration']['version']} was fitted on this "
              f"run's variants and merges (BACKDOORED from p = {result['fitted_calibration']['threshold']:.3f}; on its "
              f"own rows {json.dumps(result['fitted_calibration']['fitting_rows'])}); the decisions below are not "
              f"held-out numbers" if "fitted_calibration" in result else "- nothing fitted on this zoo"),
             f"- own scans under the shipped classifier calibration; variants and merges "
             f"under the merging calibration {p['variant_calibration']['version']} ({p['variant_calibration']['description']};"
             f" BACKDOORED from p = {p['variant_calibration']['threshold']:.3f}); robust-z cut-off 3.5",
             f"- groups run: {p['groups']} of {p['groups_planned']}" + (" (stopped at the time box)"
                                                                      if p.get('stopped_at_deadline') else ""), "",
             "## Before merging (one instance per candidate)", "",
             "| score | AUROC | TPR@5%FPR |", "|---|---|---|"]
    b = m["before_merging"]
    for key, label in (("own_scan", "own family scan"), ("own_and_exposures", "own scan + task-vector exposures"),
                       ("weight_space", "weight-space outlier share")):
        lines.append(f"| {label} | {_f(b[key]['auroc'])} | {_f(b[key]['tpr_at_5fpr'])} |")
    lines += ["", "By attack (own scan + exposures): " + "; ".join(
        f"{k}: AUROC {_f(v['auroc'])}, TPR@5%FPR {_f(v['tpr_at_5fpr'])} (n={v['n']})" for k, v in b["by_attack"].items()),
        "", "## After merging (gate decision per candidate instance, per method)", ""]
    lines += _after_table(m)
    return "\n".join(lines) + "\n"


def _after_table(m: dict[str, Any]) -> list[str]:
    lines = ["| method | AUROC | TPR@5%FPR | blocked backdoored | blocked clean | warned clean | merge flagged "
             "(with bd / clean only) | merge-specific trigger (with bd / clean only) | merged ASR | "
             "s/decision (mean, max) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in METHOD_SETTINGS:
        if name not in m:
            continue
        r = m[name]
        d = r["decisions"]
        lines.append(f"| {name} | {_f(r['gate_score']['auroc'])} | {_f(r['gate_score']['tpr_at_5fpr'])} | "
                     f"{_f(d['blocked_backdoored'])} ({d['n_backdoored']}) | {_f(d['blocked_clean'])} ({d['n_clean']}) | "
                     f"{_f(d['warned_clean'])} | {_f(r['merge_flagged_with_backdoored_candidate'])} / "
                     f"{_f(r['merge_flagged_clean_only'])} | {_f(r['merge_specific_trigger_with_backdoored_candidate'])} / "
                     f"{_f(r['merge_specific_trigger_clean_only'])} | {_f(r['merged_asr_mean'])} | "
                     f"{_f(r['decision_seconds_mean'])}, {_f(r['decision_seconds_max'])} |")
    lines += ["", "Blocked backdoored candidates by attack: " + " · ".join(
        f"{name}: " + ", ".join(f"{k} {_f(v['blocked'])} of {v['n']}" for k, v in m[name]["by_attack"].items())
        for name in METHOD_SETTINGS if name in m)]
    return lines


def _f(x) -> str:
    return "—" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))
