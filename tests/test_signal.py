"""Tests for the signal-trigger detector (SIG-style additive signals) on tiny models
trained in the test.

The data: 10 classes of 16x16 images (a hue per class plus an oriented grating, plus
noise). The backdoored model sees 10 % of its training images with SIG's horizontal
sinusoid added (amplitude 40/255, 3 periods across the width) and relabelled to class 3;
the test poisons dirty-label so that a 16x16 model trained for a few epochs learns it
reliably: what is tested is the detector's response to a learned signal, not SIG's
clean-label poisoning, which the zoo covers.
"""
from __future__ import annotations

import math

import pytest
import torch

from modelscan_bd.adapters.classifier import ClassifierAdapter
from modelscan_bd.detectors.signal import AMPLITUDE, SignalTriggerDetector
from modelscan_bd.scan import _suspected_targets
from modelscan_bd.verdict import extract_features
from tiny_gratings import C, S, detector_runs, make_data, train_poisoned

TARGET = 3
SEEDS = (0, 1)
SIGNAL = (40 / 255) * torch.sin(2 * math.pi * torch.arange(S).float() * 3 / S).view(1, 1, 1, S)


def add_signal(x: torch.Tensor) -> torch.Tensor:
    return (x + SIGNAL).clamp(0, 1)


def train(seed: int, backdoor: bool, epochs: int = 4) -> ClassifierAdapter:
    return train_poisoned(seed, add_signal if backdoor else None, TARGET, epochs)


pytestmark = pytest.mark.usefixtures("one_torch_thread")
# Determinism and the too-little-data skip of both per-label inversions: tests/test_warp.py.


@pytest.fixture(scope="module")
def scans():
    return detector_runs(SignalTriggerDetector(), add_signal, TARGET, SEEDS)


def test_the_backdoored_models_learned_the_signal(scans):
    x, y = make_data(300, torch.Generator().manual_seed(7))
    for (seed, backdoor), (adapter, _, _) in scans.items():
        keep = y != TARGET
        asr = float((adapter.predict(add_signal(x[keep])) == TARGET).float().mean())
        assert (asr >= 0.9) if backdoor else (asr < 0.5), (seed, backdoor, asr)


def test_signal_backdoor_is_flagged_with_its_target_and_orientation(scans):
    for seed in SEEDS:
        _, findings, context = scans[(seed, True)]
        (f,) = findings
        assert f.detector == "signal-trigger" and f.rule_id == "MSBD-C004"
        assert f.status == "failed" and f.target_labels == [TARGET], f.message
        result = context.results["signal-trigger"]
        assert result["label"] == TARGET and result["axis"] == "columns" and result["flagged"]
        assert [a.name for a in f.artifacts] == ["signal", "clean", "signalled"]


def test_backdoored_gap_exceeds_clean_gap(scans):
    for seed in SEEDS:
        clean_gap = scans[(seed, False)][2].results["signal-trigger"]["gap"]
        bd_gap = scans[(seed, True)][2].results["signal-trigger"]["gap"]
        assert bd_gap > clean_gap + 0.2, (seed, clean_gap, bd_gap)


def test_evidence_is_consistent_and_bounded(scans):
    for _, findings, context in scans.values():
        ev = findings[0].evidence
        rates = ev["success_by_label"]
        assert set(rates) == {"columns", "rows"} and all(len(r) == C for r in rates.values())
        best = rates[ev["axis"]][ev["label"]]
        assert best == max(max(r) for r in rates.values())
        others = max(r[t] for r in rates.values() for t in range(C) if t != ev["label"])
        assert ev["gap"] == pytest.approx(best - others, abs=1e-3)
        assert ev["amplitude"] == AMPLITUDE
        assert context.results["signal-trigger"]["works"] == (best >= ev["success_threshold"])


def test_verdict_reads_the_signal_and_prefers_a_recovered_patch_trigger():
    results = {"signal-trigger": {"label": 3, "gap": 0.6, "holdout_success": 0.95, "flagged": True},
               "trigger-recovery": {"label": 5, "log_ratio": 0.1, "flagged": False},
               "exposure-collapse": {"label": 5, "agreement": 0.4, "concentration": 0.5}}
    features = extract_features(results)
    assert features["signal_gap"] == 0.6 and features["signal_success"] == 0.95
    assert _suspected_targets(results) == [3]  # only the signal trigger was recovered
    results["trigger-recovery"]["flagged"] = True
    assert _suspected_targets(results) == [5]  # a recovered patch/blend trigger is more specific
    results["signal-trigger"]["flagged"] = False
    results["trigger-recovery"]["flagged"] = False
    assert _suspected_targets(results) == [5]
    results["signal-trigger"]["works"] = True  # held-out success reached, gap short: before an unflagged trigger
    assert _suspected_targets(results) == [3]
    results["trigger-recovery"]["flagged"] = True
    assert _suspected_targets(results) == [5]
    # with no trigger recovered and no working signal, a significant MM-BD names its label before the
    # unflagged trigger's (SIG ViTs at fast, docs/bench/target-rule/PLAN-mmbd.md); an insignificant one does not
    results["trigger-recovery"]["flagged"] = False
    results["signal-trigger"]["works"] = False
    results["mmbd"] = {"target": 7, "p_value": 0.001, "flagged": True}
    assert _suspected_targets(results) == [7]
    results["signal-trigger"]["works"] = True
    assert _suspected_targets(results) == [3]
    results["signal-trigger"]["works"] = False
    results["trigger-recovery"]["flagged"] = True
    assert _suspected_targets(results) == [5]
    results["trigger-recovery"]["flagged"] = False
    results["mmbd"]["flagged"] = False
    assert _suspected_targets(results) == [5]


def test_bench_rebuilds_the_reported_target_from_a_record():
    from modelscan_bd.bench import reported_target
    from modelscan_bd.verdict import load_calibration

    cal = load_calibration(budget="standard")
    sig = cal.detectors["signal"]
    record = {"features": {"signal_gap": sig["gap_threshold"] + 0.1, "signal_success": sig["success_threshold"] + 0.1,
                           "trigger_log_ratio": 0.0, "trigger_holdout_success": 0.9},
              "signal_label": 3, "candidate": 5, "suspected": []}
    assert reported_target(record, cal) == 3
    record["features"]["trigger_log_ratio"] = cal.detectors["trigger"]["log_ratio_threshold"] + 0.5
    assert reported_target(record, cal) == 5
    record["features"]["signal_gap"] = 0.0
    record["features"]["trigger_log_ratio"] = 0.0
    assert reported_target(record, cal) == 3  # no trigger found; the signal still works on held-out images
    record["features"]["signal_success"] = sig["success_threshold"] - 0.1
    assert reported_target(record, cal) == 5
    assert reported_target({"features": {}, "candidate": None, "suspected": [7]}, cal) == 7
    # MM-BD's label, when its test is significant at the file's p threshold and nothing above decides
    p_cut = -math.log10(cal.detectors["mmbd"]["p_threshold"])
    record["features"].update(mmbd_neglog10_p=p_cut + 0.5)
    record["mmbd_label"] = 8
    assert reported_target(record, cal) == 8
    record["features"]["mmbd_neglog10_p"] = p_cut - 0.5
    assert reported_target(record, cal) == 5
    record["features"]["mmbd_neglog10_p"] = p_cut + 0.5
    record["features"]["trigger_log_ratio"] = cal.detectors["trigger"]["log_ratio_threshold"] + 0.5
    assert reported_target(record, cal) == 5
    record["features"]["trigger_log_ratio"] = 0.0
    del record["mmbd_label"]  # records from before the label was recorded: rebuilt as before
    assert reported_target(record, cal) == 5
