"""Tests for the warp-trigger detector (WaNet-style smooth warps) on tiny models trained in
the test.

The data: 10 classes of 16x16 images (a hue per class plus an oriented grating, plus noise).
The backdoored model sees 10 % of its training images warped by the zoo's own WaNet field
(k = 4, s = 4) and relabelled to class 3. The test poisons without WaNet's noise mode: a 16x16
tiny CNN does not learn the noise mode's precise key in a test's budget (its two max-pools drop
sub-pixel detail), so these models exercise the detector's other branch, a warp that fires
for nearly every image. The precision statistic (fragility under jitter) is tested on a model
built to respond only to an exact shift; the zoo's WaNet models measure it for real.
"""
from __future__ import annotations

import pytest
import torch

from modelscan_bd.adapters.classifier import ClassifierAdapter
from modelscan_bd.cleandata import from_arrays
from modelscan_bd.detectors.base import ScanContext
from modelscan_bd.detectors.signal import SignalTriggerDetector
from modelscan_bd.detectors.warp import (SETTINGS, WarpTriggerDetector, displacement, thresholds, warp, warp_found,
                                         warp_success)
from modelscan_bd.scan import _suspected_targets
from modelscan_bd.verdict import extract_features
from modelscan_bd.zoo.attacks import WaNet
from tiny_gratings import C, S, detector_runs, make_data, train_poisoned

TARGET = 3
SEEDS = (0, 1)
ATTACK = WaNet(TARGET, C, (3, S, S), seed=5, s=4.0)


def train(seed: int, backdoor: bool, epochs: int = 6) -> ClassifierAdapter:
    return train_poisoned(seed, ATTACK.apply_trigger if backdoor else None, TARGET, epochs)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scans():
    return detector_runs(WarpTriggerDetector(), ATTACK.apply_trigger, TARGET, SEEDS, epochs=6)


def test_the_backdoored_models_learned_the_warp(scans):
    x, y = make_data(300, torch.Generator().manual_seed(7))
    keep = y != TARGET
    for (seed, backdoor), (adapter, _, _) in scans.items():
        asr = float((adapter.predict(ATTACK.apply_trigger(x[keep])) == TARGET).float().mean())
        assert (asr >= 0.9) if backdoor else (asr < 0.5), (seed, backdoor, asr)


def test_warp_backdoor_is_flagged_with_its_target(scans):
    for seed in SEEDS:
        _, findings, context = scans[(seed, True)]
        (f,) = findings
        assert f.detector == "warp-trigger" and f.rule_id == "MSBD-C005"
        assert f.status == "failed" and f.target_labels == [TARGET], f.message
        result = context.results["warp-trigger"]
        assert result["label"] == TARGET and result["flagged"]
        assert result["holdout_success"] >= thresholds({})[1]  # fires anyhow: no noise mode to make it precise
        assert [a.name for a in f.artifacts] == ["warp", "clean", "warped"]


def test_clean_models_pass_far_below_the_backdoored_success(scans):
    for seed in SEEDS:
        (f,) = scans[(seed, False)][1]
        assert f.status == "passed", f.message
        clean = scans[(seed, False)][2].results["warp-trigger"]["holdout_success"]
        backdoored = scans[(seed, True)][2].results["warp-trigger"]["holdout_success"]
        assert backdoored > clean + 0.5, (seed, clean, backdoored)


class ExactShiftKey(torch.nn.Module):
    """Says TARGET only when pixel (8, 8) holds the ramp's value from 2 px to its right, to within
    a tenth of a pixel: a trigger that an exact 2 px shift fires and sub-pixel jitter breaks."""

    def __init__(self, width: int):
        super().__init__()
        self.want, self.tol = 10 / (width - 1), 0.1 / (width - 1)

    def forward(self, x):
        hit = ((x[:, 0, 8, 8] - self.want).abs() < self.tol).float()
        logits = torch.zeros(len(x), C)
        logits[:, TARGET] = 10 * hit - 5
        return logits


def test_fragility_separates_a_precise_key_from_a_robust_warp():
    w = 16
    ramp = (torch.arange(w).float() / (w - 1)).expand(40, 3, w, w).clone()
    labels = torch.zeros(40, dtype=torch.long)
    shift = torch.zeros(C, 2, 4, 4)
    shift[:, 0] = 50.0  # every field: a uniform shift of max_shift px along x
    exact = warp_success(ExactShiftKey(w), shift, ramp, labels, max_shift=2.0)
    jittered = warp_success(ExactShiftKey(w), shift, ramp, labels, max_shift=2.0, jitter=0.5, draws=4,
                            generator=torch.Generator().manual_seed(0))
    assert exact[TARGET] == 1.0 and jittered[TARGET] < 0.5, (exact[TARGET], jittered[TARGET])
    assert exact[0] == 0.0  # images of label 0 never count for label 0
    # a model that ignores geometry (mean colour only) loses nothing to jitter
    robust = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, C))
    a = warp_success(robust, shift, ramp, labels, 2.0)
    b = warp_success(robust, shift, ramp, labels, 2.0, jitter=0.5, draws=2, generator=torch.Generator().manual_seed(0))
    assert max(abs(x - y) for x, y in zip(a, b)) < 0.1
    thr_fragility, thr_success = thresholds({})
    assert warp_found(exact[TARGET] - jittered[TARGET], 0.5, {})
    assert not warp_found(thr_fragility - 0.01, thr_success - 0.01, {})
    assert warp_found(0.0, thr_success, {}) and warp_found(0.2, 0.3, {"fragility_threshold": 0.15})


def test_evidence_is_consistent(scans):
    for _, findings, _ in scans.values():
        ev = findings[0].evidence
        rates, jittered = ev["success_by_label"], ev["jittered_success_by_label"]
        assert len(rates) == len(jittered) == C and rates[ev["best_label"]] == max(rates)
        fragility = [r - j for r, j in zip(rates, jittered)]
        assert ev["fragility"] == pytest.approx(max(fragility), abs=1e-3)
        assert ev["label"] in (ev["best_label"], ev["fragile_label"])
        assert ev["max_shift_px"] == SETTINGS["standard"].max_shift


def test_displacement_is_bounded_in_pixels_and_zero_is_the_identity():
    params = torch.full((2, 2, 4, 4), 50.0)  # tanh saturates: every control point at the bound
    offsets = displacement(params, 16, 24, max_shift=2.0)
    assert offsets.shape == (2, 16, 24, 2)
    pixels = offsets * torch.tensor([(24 - 1) / 2, (16 - 1) / 2])  # grid units -> pixels
    assert pixels.abs().max() <= 2.0 + 1e-4 and pixels.abs().min() >= 2.0 - 1e-4
    x = torch.rand(3, 3, 16, 24)
    assert torch.allclose(warp(x, displacement(torch.zeros(1, 2, 4, 4), 16, 24, 2.0)), x, atol=1e-5)
    # a uniform shift of 2 px to the right samples from 2 px to the left's neighbour: a column moves
    shifted = warp(x, displacement(torch.full((1, 2, 4, 4), 50.0) * torch.tensor([1.0, 0.0]).view(1, 2, 1, 1),
                                   16, 24, 2.0))
    assert torch.allclose(shifted[..., :-2], x[..., 2:], atol=1e-4)


@pytest.mark.parametrize("detector", [WarpTriggerDetector, SignalTriggerDetector])
def test_per_label_inversions_same_seed_same_result_and_skip_without_data(detector):
    adapter = train(0, True, epochs=1)
    x, y = make_data(120, torch.Generator().manual_seed(3))
    clean = from_arrays(x, y, adapter, seed=0)
    runs = []
    for _ in range(2):
        context = ScanContext(seed=0, budget="standard", clean=clean)
        detector().run(adapter, context)
        runs.append(context.results[detector.id])
    assert runs[0] == runs[1]
    (f,) = detector().run(adapter, ScanContext(seed=0, budget="standard", clean=from_arrays(x[:5], y[:5], adapter)))
    assert f.status == "skipped"


def test_verdict_reads_the_warp_and_prefers_a_recovered_patch_trigger():
    results = {"warp-trigger": {"label": 4, "fragility": 0.5, "holdout_success": 0.8, "flagged": True},
               "trigger-recovery": {"label": 5, "log_ratio": 0.1, "flagged": False},
               "exposure-collapse": {"label": 5, "agreement": 0.4, "concentration": 0.5}}
    features = extract_features(results)
    assert features["warp_fragility"] == 0.5 and features["warp_success"] == 0.8
    assert _suspected_targets(results) == [4]  # only the warp trigger was recovered
    results["signal-trigger"] = {"label": 3, "flagged": True}
    assert _suspected_targets(results) == [3]  # a signal first: it was the earlier detector
    results["trigger-recovery"]["flagged"] = True
    assert _suspected_targets(results) == [5]  # a recovered patch/blend trigger is the most specific


def test_bench_rebuilds_a_warp_target_from_a_record():
    from modelscan_bd.bench import reported_target
    from modelscan_bd.verdict import load_calibration

    cal = load_calibration(budget="standard")
    fragility, success = thresholds(cal.detectors.get("warp", {}))
    record = {"features": {"warp_fragility": fragility + 0.1, "warp_success": 0.5, "signal_gap": 0.0,
                           "trigger_log_ratio": 0.0, "trigger_holdout_success": 0.9},
              "warp_label": 7, "signal_label": 3, "candidate": 5, "suspected": []}
    assert reported_target(record, cal) == 7
    record["features"]["warp_fragility"] = fragility - 0.1
    assert reported_target(record, cal) == 5


def test_shipped_calibration_judges_fragility_against_clean_references():
    from modelscan_bd.verdict import load_calibration, probability, reference_tests

    cal = load_calibration(budget="standard")
    ref = cal.references["warp_fragility"]
    quiet = {"warp_fragility": ref["mean"]}  # every other feature filled from the calibration
    base, _ = probability(quiet, cal)
    assert reference_tests(quiet, cal)["warp_fragility"]["p"] < 0.01  # short of the cut it only ranks
    precise = {"warp_fragility": thresholds(cal.detectors["warp"])[0]}  # the detector's own flag
    p, _ = probability(precise, cal)
    assert p >= cal.backdoored_threshold > base
    # the fast calibration (no warp-trigger at fast) carries no such test
    assert "warp_fragility" not in load_calibration(budget="fast").references
