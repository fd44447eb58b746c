"""The gate's decision rules on hand-made scan summaries and the merging calibration fit
(trigger-transfer attribution on trained models is in tests/test_gate.py)."""
from __future__ import annotations

import pytest

from modelscan_bd.gate import _decide, _usable, rescore
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
    out = rescore(bd, cal)
    assert out["status"] == "BACKDOORED" and out["suspected_targets"] == [4]
    assert out["probability"] == pytest.approx(probability(rows[-1]["features"], cal)[0], abs=1e-4)
    assert rescore({**bd, "features": rows[0]["features"]}, cal)["status"] == "CLEAN"
    with pytest.raises(ValueError):
        fit_merging_calibration([r for r in rows if not r["asr"]], "one class")


def test_shipped_merging_calibration_loads():
    cal = load_calibration(family="merging")
    assert set(cal.features) <= set(MERGING_FEATURES) | {"mmbd_neglog10_p"}
    assert 0 < cal.backdoored_threshold < 1
