"""Tests for the MM-BD max-margin detector on tiny models trained in the test.

The data: 10 classes of 16x16 images, class k = a hue on the colour wheel (equal
saturation and brightness) plus a sinusoidal grating at angle k*18 degrees, plus noise.
Classes are built alike on purpose: MM-BD's null assumes no class is intrinsically
easier to push ahead than another. The backdoored model is trained on the same data with
10 % of it stamped with a 3x3 white square near the bottom-right corner and relabelled
to class 3 (BadNets-style).

What held over 20 training seeds at the "fast" budget (used to choose the assertions):
backdoored model flagged with the right target 20/20 (largest p 1.5e-4); its largest
margin above the clean model's 20/20; p_backdoored < p_clean 19/20; clean model passing
at p >= 0.05 only 10/20 - so "clean passes" is not asserted.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from modelscan_bd.adapters.classifier import ClassifierAdapter, PixelClassifier, Preprocess
from modelscan_bd.detectors.base import ScanContext
from modelscan_bd.detectors.mmbd import MaxMarginDetector, gamma_order_test
from tiny_gratings import C, MEAN, STD, make_data, train_poisoned

TARGET = 3
SEEDS = (0, 1, 2)


def stamp(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[:, :, -4:-1, -4:-1] = 1.0
    return x


def train(seed: int, backdoor: bool, epochs: int = 4) -> ClassifierAdapter:
    return train_poisoned(seed, stamp if backdoor else None, TARGET, epochs)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models() -> dict[tuple[int, bool], ClassifierAdapter]:
    return {(seed, bd): train(seed, bd) for seed in SEEDS for bd in (False, True)}


def scan(adapter: ClassifierAdapter, seed: int = 0, results: dict | None = None):
    context = ScanContext(seed=seed, budget="fast", results=results if results is not None else {})
    findings = MaxMarginDetector().run(adapter, context)
    assert len(findings) == 1
    return findings[0], context


@pytest.fixture(scope="module")
def scans(models) -> dict[tuple[int, bool], tuple]:
    """One scan per model, shared by the tests that only read the result."""
    return {key: scan(adapter, seed=key[0]) for key, adapter in models.items()}


def test_models_learned_the_task_and_the_backdoor(models):
    xt, yt = make_data(500, torch.Generator().manual_seed(999))
    for seed in SEEDS:
        clean, bd = models[(seed, False)], models[(seed, True)]
        assert (clean.predict(xt) == yt).float().mean() > 0.95
        assert (bd.predict(xt) == yt).float().mean() > 0.95
        other = yt != TARGET
        assert (bd.predict(stamp(xt[other])) == TARGET).float().mean() > 0.9


def test_deterministic(models, scans):
    a, ctx_a = scans[(0, True)]
    b, ctx_b = scan(models[(0, True)], seed=0)
    assert a.evidence["margins"] == b.evidence["margins"]
    assert a.evidence["p_value"] == b.evidence["p_value"]
    assert a.score == b.score and a.status == b.status
    assert ctx_a.results["mmbd"] == ctx_b.results["mmbd"]


def test_finding_fields(scans):
    f, ctx = scans[(0, False)]
    assert f.status in ("passed", "failed")
    assert f.detector == "mmbd" and f.rule_id == "MSBD-C003"
    assert math.isfinite(f.score) and f.score >= 0
    assert f.threshold == pytest.approx(-math.log10(0.05))
    ev = f.evidence
    assert len(ev["margins"]) == C and all(math.isfinite(m) for m in ev["margins"])
    assert ev["target"] == int(np.argmax(ev["margins"])) and ev["r_max"] == max(ev["margins"])
    assert 0.0 <= ev["p_value"] <= 1.0 and ev["gamma_shape"] > 0 and ev["gamma_scale"] > 0
    assert (ev["images_per_class"], ev["steps"]) == (8, 100)
    assert len(f.artifacts) == 1 and f.artifacts[0].png_base64
    assert ctx.results["mmbd"]["p_value"] == ev["p_value"]
    assert ctx.results["mmbd"]["target"] == ev["target"]
    assert ctx.results["mmbd"]["flagged"] == (f.status == "failed")  # read by the target rule
    json.dumps(f.to_dict())  # the report must be able to serialise it


def test_backdoored_model_flagged_with_its_target(scans):
    for seed in SEEDS:
        f, _ = scans[(seed, True)]
        assert f.evidence["target"] == TARGET
        assert f.status == "failed" and f.severity == "medium"
        assert f.target_labels == [TARGET]


def test_backdoored_more_anomalous_than_clean(scans):
    for seed in SEEDS:
        clean, _ = scans[(seed, False)]
        bd, _ = scans[(seed, True)]
        assert bd.evidence["r_max"] > clean.evidence["r_max"]
        # held for these seeds (19/20 seeds overall; see the module docstring)
        assert bd.evidence["p_value"] < clean.evidence["p_value"]


def test_model_left_untouched(models):
    adapter = models[(1, True)]
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    adapter.model.train()  # run() must put it in eval mode and restore this afterwards
    scan(adapter)
    assert adapter.model.training
    adapter.model.eval()
    assert all(p.requires_grad for p in adapter.model.parameters())
    for k, v in adapter.model.state_dict().items():
        assert torch.equal(v, before[k])


def test_threshold_override_from_calibration(models):
    results = {"calibration": {"mmbd": {"p_threshold": 1e-300}}}
    f, _ = scan(models[(0, True)], results=results)
    assert f.threshold == pytest.approx(300.0)
    assert f.status == "passed" and f.target_labels == []


def test_too_few_classes_skipped():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    adapter = ClassifierAdapter(PixelClassifier(net, MEAN, STD), 3, ["a", "b", "c"],
                                Preprocess(size=(3, 4, 4), mean=MEAN, std=STD, source="test"), "lin")
    f, ctx = scan(adapter)
    assert f.status == "skipped" and "3 classes" in f.message
    assert "mmbd" not in ctx.results


def test_many_class_models_share_one_step_s_rows_among_their_classes():
    from modelscan_bd.detectors.mmbd import images_per_class

    # up to 10 classes the budget's starts per class; beyond, about a 10-class model's rows in all
    assert [images_per_class(16, c) for c in (4, 10, 20, 43, 200)] == [16, 16, 8, 4, 4]
    assert images_per_class(8, 43) == 4 and images_per_class(32, 43) == 7
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 20))
    labels = [str(k) for k in range(20)]
    adapter = ClassifierAdapter(PixelClassifier(net, MEAN, STD), 20, labels,
                                Preprocess(size=(3, 4, 4), mean=MEAN, std=STD, source="test"), "lin")
    f, _ = scan(adapter)  # fast: 8 starts per class at 10 classes
    assert f.status in ("passed", "failed") and len(f.evidence["margins"]) == 20
    assert (f.evidence["images_per_class"], f.evidence["steps"]) == (4, 100)


def test_gamma_order_test():
    from scipy import stats

    # statistics spread like an ordinary Gamma sample: the largest is not an outlier
    ordinary = stats.gamma.ppf((np.arange(10) + 0.5) / 10, 20.0, scale=1.0)
    result = gamma_order_test(ordinary)
    # (p is ~0.1, not ~0.5: fitting on the values below the maximum narrows the null)
    assert result.target == 9 and result.shift == 0.0 and result.p_value > 0.05
    # the same with the top value pushed far out: a tiny p
    outlier = ordinary.copy()
    outlier[4] = 200.0
    result = gamma_order_test(outlier)
    assert result.target == 4 and result.p_value < 1e-6
    # negative margins (classes the search never made the top class) get shifted, not dropped
    shifted = gamma_order_test(np.append(ordinary[:9] - 25.0, 30.0))
    assert shifted.shift > 0 and shifted.target == 9 and 0.0 <= shifted.p_value < 1e-3
