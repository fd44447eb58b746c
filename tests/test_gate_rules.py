"""The gate's decision rules on hand-made scan summaries and the merging calibration fit
(trigger-transfer attribution on trained models is in tests/test_gate.py)."""
from __future__ import annotations

import dataclasses

import pytest

from modelscan_bd.cli import cli
from modelscan_bd.errors import UsageError
from modelscan_bd.gate import GateOptions, _carrier, _decide, _usable, candidate_trigger, rescore, settled
from modelscan_bd.gate_calibration import MERGING_FEATURES, fit_merging_calibration, fitting_summary
from modelscan_bd.verdict import load_calibration, probability


def _scan(status="CLEAN", p=0.1, acc=0.95, incomplete=()):
    return {"status": status, "probability": p, "summary": status, "suspected_targets": [],
            "incomplete_reasons": list(incomplete), "seconds": 1.0, "clean_accuracy": acc}


def _candidate(exposure=None):
    return {"scan": _scan(), "exposures": [exposure] if exposure else [], "safety": [],
            "weight_space": {"status": "done", "outlier": False, "score": 0.0}}


def _amp(status, p, acc):
    return {"kind": "amplify", "lambda": 1.5, "density": 1.0, **_scan(status, p, acc)}


def test_a_broken_variant_gives_no_evidence():
    readable = _amp("BACKDOORED", 0.9, 0.9)
    broken = _amp("BACKDOORED", 0.9, 0.2)  # amplified weights no longer classify: its collapse means nothing
    readable["usable"] = _usable(readable, 0.95, 0.5)
    broken["usable"] = _usable(broken, 0.95, 0.5)
    assert readable["usable"] and not broken["usable"]
    assert _decide(_candidate(readable), _scan(), None, False)["verdict"] == "block"
    out = _decide(_candidate(broken), _scan(), None, False)
    assert out["verdict"] == "warn" and out["score"] == pytest.approx(0.1)  # a warning, never a block
    assert "no longer classifies" in out["reasons"][0]
    assert not _usable(_scan(incomplete=["mmbd skipped"]), 0.95, 0.5)


def test_a_flagged_scan_whose_trigger_the_base_shares_only_warns():
    """A trigger that works through the base about as well is the base's feature, not the
    candidate's: its own scan or variant then warns instead of blocking."""
    def check(on_base):
        return {"label": 8, "on_model": 0.9, "on_base": on_base, "natural": on_base > 0.45}

    for where in ("own", "variant"):
        for on_base, verdict in ((0.93, "warn"), (0.02, "block")):
            flagged = {**_scan("BACKDOORED", 0.8), "base_check": check(on_base)}
            amp = {**_amp("BACKDOORED", 0.8, 0.9), "base_check": check(on_base), "usable": True}
            cand = {**_candidate(amp), "scan": flagged} if where == "own" else _candidate(amp)
            if where == "own":
                cand["exposures"] = []
            out = _decide(cand, _scan(), None, False)
            assert out["verdict"] == verdict, (where, on_base, out["reasons"])
            assert ("also works through the base" in out["reasons"][0]) == (verdict == "warn")
    no_trigger = {**_scan("BACKDOORED", 0.8), "base_check": None}  # nothing to test: the scan's verdict stands
    assert _decide({**_candidate(), "scan": no_trigger}, _scan(), None, False)["verdict"] == "block"


def test_attribution_blocks_a_unique_culprit_and_only_warns_when_ambiguous():
    merged = {**_scan("BACKDOORED", 0.9), "usable": True}
    culprit = {"label": 3, "success_with_all": 0.9, "success_without": 0.1, "success_on_base": 0.8}
    bystander = {"label": 3, "success_with_all": 0.9, "success_without": 0.85, "success_on_base": 0.8}
    hit = _decide(_candidate(), merged, culprit, True)
    assert hit["verdict"] == "block" and hit["attribution"]["attributed"]
    assert hit["attribution"]["score"] == pytest.approx(0.9 * (1 - 0.1 / 0.9), abs=1e-3)
    assert _decide(_candidate(), merged, bystander, True)["verdict"] == "pass"
    assert _decide(_candidate(), merged, culprit, True, ambiguous=True)["verdict"] == "warn"
    assert _decide(_candidate(), {**merged, "status": "CLEAN"}, culprit, False)["verdict"] == "pass"
    # A SUSPICIOUS merge with a trigger that also works on the base: attribution only warns.
    assert _decide(_candidate(), {**merged, "status": "SUSPICIOUS"}, culprit, True)["verdict"] == "warn"


def test_a_merge_trigger_another_candidate_carries_alone_is_not_pinned_on_the_culprit():
    """Blind seed 9's TIES false blocks: leaving one clean candidate out halved a label-8 merge
    trigger, but two other candidates passed that trigger by themselves about as well."""
    def loo(without, alone):
        return {"label": 8, "success_with_all": 0.93, "success_without": without, "success_alone": alone,
                "success_on_base": 0.07}

    shared = {0: loo(0.82, 0.04), 1: loo(0.84, 0.38), 2: loo(0.39, 0.52)}
    assert _carrier(shared, 2, 0.5, 0.25) == 1  # 0.38 > max(0.5 x 0.52, 0.25)
    backdoor = {0: loo(0.0, 1.0), 1: loo(0.86, 0.32), 2: loo(0.96, 0.05)}  # Blended: its trigger works through it
    assert _carrier(backdoor, 0, 0.5, 0.25) is None  # a peer at 0.32 is under half the culprit's 1.0
    badmerging = {0: loo(0.0, 0.13), 1: loo(0.83, 0.08), 2: loo(0.5, 0.0)}  # fires only after merging
    assert _carrier(badmerging, 0, 0.5, 0.25) is None  # peers under the 25 % floor: small numbers don't decide
    merged = {**_scan("BACKDOORED", 0.78), "usable": True}
    out = _decide(_candidate(), merged, shared[2], True, carrier=("clean-06", 0.38))
    assert out["verdict"] == "warn" and not out["attribution"]["attributed"]
    assert out["attribution"]["carried_by"] == "clean-06" and "a feature they share" in out["reasons"][0]
    assert _decide(_candidate(), merged, shared[2], True)["verdict"] == "block"  # without a carrier: pinned
    collapsed = {**merged, "trigger_transfer": {"source": "collapse", "label": 8, "merge_specific": True}}
    out = _decide(_candidate(), collapsed, shared[2], True, carrier=("clean-06", 0.38))
    assert out["verdict"] == "warn" and "clean-06 alone sends images there with no trigger on 38%" in out["reasons"][0]


def test_a_merge_specific_trigger_blocks_its_culprit_even_when_the_merge_scores_clean():
    # BadMerging: the merge scores CLEAN under the calibration, but its recovered trigger
    # works through the merge and not through the base, and leaves with one candidate.
    merged = {**_scan("CLEAN", 0.3), "usable": True,
              "trigger_transfer": {"label": 5, "on_merge": 1.0, "on_base": 0.05, "merge_specific": True}}
    culprit = {"label": 5, "success_with_all": 1.0, "success_without": 0.1, "success_on_base": 0.05}
    bystander = {"label": 5, "success_with_all": 1.0, "success_without": 0.98, "success_on_base": 0.05}
    hit = _decide(_candidate(), merged, culprit, True)
    assert hit["verdict"] == "block" and hit["attribution"]["attributed"], hit["reasons"]
    assert hit["attribution"]["score"] == pytest.approx(0.95 * 0.9, abs=1e-3)
    assert _decide(_candidate(), merged, bystander, True)["verdict"] == "pass"
    natural = {**merged, "trigger_transfer": {**merged["trigger_transfer"], "on_base": 0.9, "merge_specific": False}}
    assert _decide(_candidate(), natural, {**culprit, "success_on_base": 0.9}, False)["verdict"] == "pass"


def test_a_collapsed_merge_blocks_its_culprit_only_when_the_culprits_own_trigger_names_the_label():
    """A merge that sends clean images to one label with no trigger (it is not a usable
    model, so it has no scan verdict): the candidate it needs is blocked when its trigger
    inverted against the base names that label, and only warned otherwise (an outsized
    task vector can break a merge without a backdoor)."""
    merged = {**_scan("CLEAN", 0.0, acc=0.11), "usable": False,
              "trigger_transfer": {"source": "collapse", "label": 0, "on_merge": 1.0, "on_base": 0.0,
                                   "merge_specific": True}}
    culprit = {"label": 0, "success_with_all": 1.0, "success_without": 0.02, "success_on_base": 0.0}
    peer = {"label": 0, "success_with_all": 1.0, "success_without": 1.0, "success_on_base": 0.0}
    names = {**_candidate(), "differential_trigger": {"label": 0, "planted": False}}
    other = {**_candidate(), "differential_trigger": {"label": 4, "planted": False}}
    hit = _decide(names, merged, culprit, True)
    assert hit["verdict"] == "block" and hit["attribution"]["score"] == pytest.approx(0.98), hit
    assert "the merge collapses" in hit["reasons"][0]
    assert _decide(other, merged, culprit, True)["verdict"] == "warn"
    assert _decide(names, merged, peer, True)["verdict"] == "pass"
    ambiguous = _decide(names, merged, culprit, True, ambiguous=True)
    assert ambiguous["verdict"] == "warn" and ambiguous["attribution"]["score"] == 0.0


def test_a_trigger_no_peer_shares_blocks_at_a_smaller_size_ratio():
    """BadMerging-style candidates hide their backdoor alone, so their trigger inverted against
    the base is only 1.6-3x smaller than the median label's; it still works through no other
    candidate, while a clean fine-tune's natural patch transfers to its peers."""
    def cand(**trig):
        return {**_candidate(), "differential_trigger": {"label": 1, "shape": "patch", "log_ratio": 0.9,
                                                          "on_model": 0.9, "on_base": 0.0, "planted": False,
                                                          "specific": False, "on_peers": {"a": 0.0}, **trig}}

    hit = _decide(cand(specific=True), _scan(), None, False)
    assert hit["verdict"] == "block" and "specific to it" in hit["reasons"][0]
    assert hit["score"] == pytest.approx(1.0)
    assert _decide(cand(), _scan(), None, False)["verdict"] == "pass"


def _rows():
    clean = {"collapse_concentration": 0.3, "collapse_agreement": 0.6, "trigger_log_ratio": 0.3,
             "trigger_holdout_success": 0.95, "untargeted_log_ratio": -1.2}
    rows = []
    for i in range(12):
        d = 0.02 * (i % 4)
        rows.append({"features": {**clean, "trigger_log_ratio": 0.3 + d, "collapse_concentration": 0.3 + d},
                     "asr": None if i % 2 else 0.01})
    for i in range(6):
        rows.append({"features": {**clean, "trigger_log_ratio": 1.2 + 0.1 * i, "collapse_concentration": 0.7},
                     "asr": 0.9})
    return rows


def test_merging_calibration_separates_its_fitting_rows_and_rescores_from_features():
    rows = _rows()
    cal = fit_merging_calibration(rows, "test rows")
    assert cal.features == list(MERGING_FEATURES) and cal.version.startswith("merging-")
    summary = fitting_summary(rows, cal)
    assert summary["tpr"] == 1.0 and summary["fpr"] <= 0.05
    bd = {**_scan("CLEAN", 0.1), "features": rows[-1]["features"], "trigger": {"label": 4}}
    out = rescore(bd, cal, 10)
    assert out["status"] == "BACKDOORED" and out["suspected_targets"] == [4]
    assert out["probability"] == pytest.approx(probability(rows[-1]["features"], cal)[0], abs=1e-4)
    assert rescore({**bd, "features": rows[0]["features"]}, cal, 10)["status"] == "CLEAN"
    # A calibration's cuts for many-class models apply to a rescored variant as to a scan.
    strict = dataclasses.replace(cal, class_cuts=[{"min_classes": 20, "backdoored_threshold": 1.0,
                                                   "suspicious_threshold": 1.0, "description": "test"}])
    assert rescore(bd, strict, 10)["status"] == "BACKDOORED" and rescore(bd, strict, 43)["status"] == "CLEAN"
    # ... and so does a combiner of their own: here one with every weight's sign flipped.
    flipped = {"mean": cal.mean, "scale": cal.scale, "weights": [-w for w in cal.weights], "bias": -cal.bias,
               "fill": cal.fill}
    own = dataclasses.replace(cal, class_cuts=[{"min_classes": 20, "backdoored_threshold": cal.backdoored_threshold,
                                                "suspicious_threshold": cal.suspicious_threshold,
                                                "description": "test", "combiner": flipped}])
    assert rescore(bd, own, 10)["status"] == "BACKDOORED" and rescore(bd, own, 43)["status"] == "CLEAN"
    with pytest.raises(UsageError, match="need both backdoored and clean models"):
        fit_merging_calibration([r for r in rows if not r["asr"]], "one class")
    with pytest.raises(UsageError, match="no rows"):
        fit_merging_calibration([], "none")


def test_shipped_merging_calibration_loads():
    cal = load_calibration(family="merging")
    assert set(cal.features) <= set(MERGING_FEATURES) | {"mmbd_neglog10_p"}
    assert 0 < cal.backdoored_threshold < 1


def _record(group, method, merged_features, merged_asr, candidates):
    return {"group": group, "method": method, "merged_asr": merged_asr,
            "merged": {"usable": True, "features": merged_features}, "candidates": candidates}


def _bench_candidate(name, backdoored, features, usable=True, asr=None):
    return {"name": name, "backdoored": backdoored, "exposure_features": {"amplify": features},
            "exposure_status": {"amplify": "CLEAN" if usable else "BACKDOORED (not usable)"},
            "exposure_asr": {"amplify": asr} if backdoored else {}}


def test_merging_fit_rows_take_each_variant_once_and_skip_dare_and_broken_models():
    from modelscan_bd.gate_bench import fit_rows

    f = {k: 0.5 for k in MERGING_FEATURES}
    cands = [_bench_candidate("bd", True, {**f, "trigger_log_ratio": 2.0}, asr=0.97), _bench_candidate("c0", False, f),
             _bench_candidate("c1", False, f, usable=False)]
    records = [_record(["bd", "c0", "c1"], m, {**f, "collapse_agreement": i}, 0.8 - 0.1 * i, cands)
               for i, m in enumerate(("task_arithmetic", "ties", "dare_linear"))]
    records.append(_record(["bd", "c0", "c1"], "ties", f, 0.1, cands))  # the same merge again: counted once
    rows = fit_rows(records)
    assert [r["item"] for r in rows] == ["bd amplify", "c0 amplify", "task_arithmetic merge of bd+c0+c1",
                                         "ties merge of bd+c0+c1"]
    assert [r["asr"] for r in rows] == [0.97, None, 0.8, pytest.approx(0.7)]
    records[0]["merged"]["usable"] = False  # a broken merge is no evidence either way
    assert "task_arithmetic merge of bd+c0+c1" not in [r["item"] for r in fit_rows(records)]
    del cands[0]["exposure_asr"]["amplify"]  # a record without the truth cannot label its row
    with pytest.raises(ValueError, match="no attack success"):
        fit_rows(records)


def _start(label, log_ratio, on_model, peers, on_base=0.03):
    return {"label": label, "shape": "patch", "size": 0.06, "log_ratio": log_ratio, "seconds": 10.0,
            "on_model": on_model, "on_base": on_base, "on_peers": {"a": peers[0], "b": peers[1]}}


def test_a_candidate_trigger_is_judged_on_the_mean_of_its_starts():
    """Seed 12's BadMerging candidate scored log ratio 0.68 from one start and 0.49 from another;
    a clean candidate's natural patch passed its peers on 4 % from one start and 13 % from
    another. Each start alone decides by luck; their mean and the peers' largest success do not."""
    opt = GateOptions()
    badmerging = candidate_trigger([_start(0, 0.68, 0.95, (0.05, 0.0)), _start(0, 0.49, 0.93, (0.05, 0.02))], opt, 0.8)
    assert badmerging["specific"] and not badmerging["planted"], badmerging
    assert badmerging["log_ratio"] == pytest.approx(0.585) and badmerging["seconds"] == 20.0
    natural = candidate_trigger([_start(9, 0.55, 0.85, (0.04, 0.02)), _start(9, 0.45, 0.91, (0.13, 0.06))], opt, 0.8)
    assert not natural["specific"] and natural["on_peers"] == {"a": 0.13, "b": 0.06}
    planted = candidate_trigger([_start(5, 2.3, 1.0, (0.0, 0.9)), _start(5, 2.2, 1.0, (0.0, 0.8))], opt, 0.8)
    assert planted["planted"] and not planted["specific"]  # a twin passes it: only the planted test blocks
    missed = candidate_trigger([_start(0, 0.47, 0.95, (0.02, 0.0)), _start(4, 0.72, 0.96, (0.0, 0.0))], opt, 0.8)
    assert missed["label"] == 4 and not missed["labels_agree"] and missed["specific"]  # one start missed label 4
    on_base = candidate_trigger([_start(2, 1.6, 0.9, (0.0, 0.0), on_base=0.4)] * 2, opt, 0.8)
    assert not on_base["planted"]  # the base passes it on more than a quarter of the images
    assert [s["log_ratio"] for s in badmerging["starts"]] == [0.68, 0.49]


def test_a_second_start_runs_only_when_the_first_is_near_a_cut():
    """One more start moves the mean by half its change; a first start that no such change can
    carry across a cut settles the verdict alone."""
    opt = GateOptions()
    assert settled([_start(5, 2.3, 1.0, (0.0, 0.9))], opt, 0.8)  # planted far beyond every cut
    assert settled([_start(3, 0.2, 1.0, (0.0, 0.0))], opt, 0.8)  # no label stands out
    assert settled([_start(3, 0.9, 1.0, (0.6, 0.4))], opt, 0.8)  # the peers share it: a natural patch
    assert settled([_start(3, 0.9, 0.4, (0.0, 0.0))], opt, 0.8)  # it barely works through the candidate
    assert not settled([_start(0, 0.55, 0.95, (0.05, 0.0))], opt, 0.8)  # BadMerging near the specific cut
    assert not settled([_start(9, 0.9, 0.9, (0.13, 0.06))], opt, 0.8)  # peers near peer_transfer
    assert not settled([_start(2, 1.0, 0.85, (0.0, 0.0))], opt, 0.8)  # success near the bar
    assert not settled([_start(2, 1.6, 0.9, (0.0, 0.0), on_base=0.3)], opt, 0.8)  # the base near the shared cut
    # With no peers (a single candidate) only the planted test can flag.
    lone = {**_start(1, 0.9, 1.0, (0.0, 0.0)), "on_peers": {}}
    assert settled([lone], opt, 0.8) and not settled([{**lone, "log_ratio": 1.3}], opt, 0.8)


def test_the_python_gate_and_the_cli_default_to_one_budget():
    """`modelscan-bd gate` and GateOptions() must decide alike: both at the budget the merging
    benchmarks measured (fast)."""
    cli_default = next(p.default for p in cli.commands["gate"].params if p.name == "budget")
    assert GateOptions().budget == cli_default == "fast"
