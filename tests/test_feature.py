"""Tests for the feature-trigger detector (feature-space inversion, after FeatureRE).

What it finds is measured on the zoos (docs/bench/feature-trigger): on tiny 16 px test models the
statistic is not reliable, so these tests check the mechanics on tiny transformers models built
here: the feature edit, the statistic, where the detector applies, determinism, and how the
verdict and the target rule read it.
"""
from __future__ import annotations

import math

import pytest
import torch

from modelscan_bd.adapters.classifier import ClassifierAdapter, PixelClassifier, Preprocess
from modelscan_bd.cleandata import from_arrays
from modelscan_bd.detectors.base import ScanContext
from modelscan_bd.detectors.feature import (LAYERS, FeatureTriggerDetector, edited, feature_found, feature_layer,
                                            size_gap)
from modelscan_bd.scan import _suspected_targets
from modelscan_bd.verdict import extract_features, load_calibration, probability
from modelscan_bd.zoo.architectures import tiny_resnet, tiny_vit

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def adapter(net, classes: int = 10) -> ClassifierAdapter:
    torch.manual_seed(0)
    model = PixelClassifier(net, MEAN, STD, hf_style=True).eval()
    return ClassifierAdapter(model, classes, [f"c{k}" for k in range(classes)],
                             Preprocess(size=(3, 32, 32), mean=MEAN, std=STD, source="test"),
                             type(net).__name__)


def context(target: ClassifierAdapter, cal: dict | None, seed: int = 0) -> ScanContext:
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(60, 3, 32, 32, generator=g), torch.arange(60) % target.num_classes
    return ScanContext(seed=seed, budget="standard", clean=from_arrays(x, y, target, seed=seed),
                       results={"calibration": {"feature": cal} if cal else {}})


def test_the_edit_mixes_each_group_with_its_own_mask_and_pattern_and_goes_away():
    torch.manual_seed(0)
    target = adapter(tiny_resnet(10))
    model, layer = target.model, feature_layer(target.model, "ResNetForImageClassification")
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        c, h, w = 32, 8, 8  # the first stage's output at 32 px
        patterns = torch.randn(2, c, h, w)
        with edited(layer, {"edit": (torch.zeros(2, c, h, w), patterns)}):
            assert torch.allclose(model(x), plain, atol=1e-5)  # an empty mask changes nothing
        with edited(layer, {"edit": (torch.ones(2, c, h, w), patterns)}):
            full = model(x)  # a full mask replaces the map: the input no longer matters within a group
        assert torch.allclose(full[0], full[2], atol=1e-5) and torch.allclose(full[3], full[5], atol=1e-5)
        assert not torch.allclose(full[0], full[3], atol=1e-3)  # each group its own pattern
        assert torch.allclose(model(x), plain)  # the hook is gone


def test_size_gap_names_the_smallest_mask_and_its_lead():
    label, gap = size_gap([0.1, 0.05, 0.2, 1.0])
    assert label == 1 and gap == pytest.approx(math.log(2))
    assert size_gap([0.3]) == (0, 0.0)


def test_applies_only_where_a_layer_and_a_reference_exist():
    cal = {"gap_threshold": 0.4, "classes": 10}
    for target, why in ((adapter(tiny_vit(10)), "no feature layer"), (adapter(tiny_resnet(5), 5), "10-class")):
        (f,) = FeatureTriggerDetector().run(target, context(target, cal))
        assert f.status == "passed" and not f.evidence["applied"] and why in f.message, f.message
    assert "ViTForImageClassification" not in LAYERS


def test_runs_deterministically_and_flags_by_the_calibrated_cut():
    target = adapter(tiny_resnet(10))
    runs = []
    for _ in range(2):
        ctx = context(target, {"gap_threshold": 0.0, "classes": 10})
        (f,) = FeatureTriggerDetector().run(target, ctx)
        runs.append((f, ctx.results["feature-trigger"]))
    (f, r), (f2, r2) = runs
    assert f.evidence["sizes_by_label"] == f2.evidence["sizes_by_label"] and r["gap"] == r2["gap"]
    assert len(f.evidence["sizes_by_label"]) == 10 and r["gap"] >= 0.0 and 0.0 <= r["holdout_success"] <= 1.0
    sizes = f.evidence["sizes_by_label"]
    assert r["label"] == min(range(10), key=sizes.__getitem__)
    assert r["flagged"] and f.status == "failed" and f.target_labels == [r["label"]]  # cut 0: any gap counts
    ctx = context(target, {"gap_threshold": r["gap"] + 0.01, "classes": 10})
    (f,) = FeatureTriggerDetector().run(target, ctx)
    assert f.status == "passed" and not ctx.results["feature-trigger"]["flagged"]
    assert not feature_found(5.0, {})  # a calibration without the block never counts a feature trigger


def test_the_verdict_judges_the_gap_against_its_clean_reference_and_names_the_label():
    cal = load_calibration(budget="standard")
    ref, cut = cal.references["feature_gap"], cal.detectors["feature"]["gap_threshold"]
    assert cut == pytest.approx(ref["mean"] + ref["z_cut"] * ref["sd"], abs=1e-3)
    results = {"feature-trigger": {"label": 7, "gap": cut + 0.2, "flagged": True},
               "trigger-recovery": {"label": 5, "log_ratio": 0.1, "flagged": False},
               "exposure-collapse": {"label": 5, "agreement": 0.4, "concentration": 0.5}}
    features = extract_features(results)
    assert features["feature_gap"] == cut + 0.2
    quiet = {"feature_gap": ref["mean"]}  # every other feature filled from the calibration
    loud = {"feature_gap": cut + 0.2}
    assert probability(loud, cal, 10)[0] >= cal.backdoored_threshold > probability(quiet, cal, 10)[0]
    assert _suspected_targets(results) == [7]  # the only trigger recovered
    results["trigger-recovery"]["flagged"] = True
    assert _suspected_targets(results) == [5]  # an input-space trigger is more specific
    results["trigger-recovery"]["flagged"] = False
    results["signal-trigger"] = {"label": 3, "flagged": True}
    assert _suspected_targets(results) == [3]
    results["signal-trigger"]["flagged"] = False
    results["feature-trigger"]["flagged"] = False
    assert _suspected_targets(results) == [5]


def test_bench_rebuilds_the_feature_label_from_a_record():
    from modelscan_bd.bench import reported_target

    cal = load_calibration(budget="standard")
    cut = cal.detectors["feature"]["gap_threshold"]
    record = {"features": {"feature_gap": cut + 0.1, "trigger_log_ratio": 0.0, "trigger_holdout_success": 0.9},
              "feature_label": 7, "candidate": 5, "suspected": []}
    assert reported_target(record, cal) == 7
    record["features"]["feature_gap"] = cut - 0.1
    assert reported_target(record, cal) == 5
    record["features"]["feature_gap"] = cut + 0.1
    assert reported_target(record, load_calibration(budget="fast")) == 5  # a file without the block ignores it
