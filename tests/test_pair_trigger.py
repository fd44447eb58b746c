"""Tests for the pair-trigger detector (source-specific backdoors) on tiny models trained in the test.

The data: 10 classes of 16x16 synthetic gratings. The backdoored model learns the zoo's own
source-specific BadNets (a 3x3 patch sends one source class to the target; triggered images of the
other classes keep their labels); its clean twin has the same recipe and seed.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import cli_exit_code, detector_context
from modelscan_bd.detectors.base import ScanContext
from modelscan_bd.detectors.pair import CROWD, TOP, PairTriggerDetector, crowd_gap, pair_found, pair_score, pair_slots
from modelscan_bd.inversion import PATCH, Inversion, InversionSettings, Slot
from modelscan_bd.verdict import fit_references, load_calibration

CLASSES, SIZE = 10, 16
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pair_slots_cover_every_pair_whose_source_has_images():
    labels = torch.tensor([0, 0, 1, 1, 2])  # class 2 has one image only, 3 none
    slots = pair_slots(labels, 4)
    assert {(s.source, s.target) for s in slots} == {(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3)}
    assert all(s.shape == PATCH for s in slots)


def test_a_source_slot_draws_only_its_source_images():
    x = torch.rand(12, 3, 8, 8)
    y = torch.tensor([0, 1, 2] * 4)
    run = Inversion(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3)), x, y,
                    [Slot(2, PATCH, source=1), Slot(2, PATCH)], InversionSettings(steps=1), torch.Generator())
    assert set(y[run.pools[0]].tolist()) == {1}
    assert set(y[run.pools[1]].tolist()) == {0, 1}  # without a source: every image not of the target


def test_crowd_gap_is_how_far_the_refined_best_falls_below_the_crowd():
    screened = [0.01 * (1 + i / 100) for i in range(90)]
    assert crowd_gap(screened, screened[CROWD - 1]) == pytest.approx(0.0)
    assert crowd_gap(screened, screened[CROWD - 1] / math.e) == pytest.approx(1.0)
    assert crowd_gap(screened[:4], 0.01) == pytest.approx(math.log(screened[3] / 0.01))  # fewer pairs than the crowd
    assert not pair_found(2.0, {}) and pair_found(0.9, {"score_threshold": 0.8})
    assert not pair_found(None, {"score_threshold": 0.8})


def test_the_score_weighs_the_gap_by_how_specifically_the_trigger_works():
    assert pair_score(1.0, 0.9, 0.1) == pytest.approx(0.8)
    assert pair_score(1.0, 0.2, 0.5) == 0.0  # moves other classes more than its source: no evidence
    assert pair_score(1.0, None, 0.1) == 0.0 and pair_score(1.0, 0.9, None) == 0.0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 10-class source-specific tiny ResNet and its clean twin, saved as hub-format repos."""
    from modelscan_bd.data import synthetic_dataset
    from modelscan_bd.zoo.attacks import SourceSpecific
    from modelscan_bd.zoo.save import save_hub_repo
    from modelscan_bd.zoo.train import train_classifier

    data = synthetic_dataset(num_classes=CLASSES, image_size=SIZE, n_train=3000, n_test=500, seed=5)
    root = tmp_path_factory.mktemp("pair-trigger")
    attack = SourceSpecific(3, CLASSES, data.image_shape, seed=0)
    out = {}
    for name, atk in (("clean", None), ("source-specific", attack)):
        result = train_classifier("resnet", data, atk, poison_rate=0.05, epochs=8, batch_size=64, seed=0,
                                  mean=MEAN, std=STD)
        assert result.clean_acc >= 0.8 and (atk is None or result.asr >= 0.8), (name, result.clean_acc, result.asr)
        out[name] = save_hub_repo(result.model, root / name, mean=MEAN, std=STD, image_size=SIZE)
    clean_data = root / "clean.npz"
    np.savez_compressed(clean_data, images=data.test_x, labels=data.test_y)
    return out, clean_data, attack


def _run_detector(path, clean_data, cal=None):
    adapter, context = detector_context(path, clean_data, "standard")
    context.results["calibration"] = {"pair": cal or {}}
    return PairTriggerDetector().run(adapter, context), context


def test_the_planted_pair_is_found_among_the_90(models):
    """The pair kept for the backdoored model (the highest-scoring of the refined) is the planted one, and
    its trigger works on held-out images of the source and not on the other classes (the cover set). On
    these gratings every model's pairs are easy (the twin's best covers about 1.3 % of the image), so the
    crowd gap does not separate the two models here; its separation is measured on CIFAR-10 zoos
    (docs/bench/cifar10-source-specific/NOTES.md)."""
    paths, clean_data, attack = models
    (bad,), bad_ctx = _run_detector(paths["source-specific"], clean_data)
    (good,), good_ctx = _run_detector(paths["clean"], clean_data)
    found, twin = bad_ctx.results["pair-trigger"], good_ctx.results["pair-trigger"]
    assert (found["source"], found["label"]) == (attack.source, attack.target), found
    assert (twin["source"], twin["label"]) != (attack.source, attack.target), twin
    assert found["holdout_success"] > 0.8 and found["off_source_success"] < 0.3, found
    # each refined pair is scored and reported; the kept one is the highest-scoring
    for ctx in (bad_ctx, good_ctx):
        res = ctx.results["pair-trigger"]
        top = max(p["score"] for p in res["refined"])
        assert len(res["refined"]) == TOP and res["score"] == pytest.approx(top, abs=1e-4), res["refined"]
        assert (res["source"], res["label"]) in {(p["source"], p["target"]) for p in res["refined"]
                                                 if p["score"] == top}, res["refined"]
    # without a cut in the calibration nothing is flagged, but the evidence is reported
    assert bad.status == "passed" and bad.evidence["pairs"] == 90 and len(bad.evidence["refined"]) == TOP
    assert {a.name for a in bad.artifacts} >= {"mask", "triggered"}
    # the benchmark scores a source-specific model's trigger by this pair: its mask overlaps the patch
    from modelscan_bd.bench import recovered_trigger

    truth = {**attack.ground_truth(), "trigger_mask": "mask.png"}
    assert truth["type"] == "source-specific"
    source, success, iou = recovered_trigger(bad_ctx.results, truth, attack.mask.numpy())
    assert source == "pair-trigger" and success == found["holdout_success"] and iou > 0, (success, iou)
    # a cut below the score flags it
    (flagged,), _ = _run_detector(paths["source-specific"], clean_data, {"score_threshold": found["score"] - 0.1})
    assert flagged.status == "failed" and flagged.target_labels == [attack.target]


def test_scan_cli_calls_a_flagged_pair_source_specific(models, tmp_path):
    """The verdict's plumbing through the CLI: a clean reference well below the model's score (three
    made-up clean values) makes the pair test fire; the verdict names the target, the pattern and the source."""
    paths, clean_data, attack = models
    score = _run_detector(paths["source-specific"], clean_data)[1].results["pair-trigger"]["score"]
    cal = load_calibration(budget="standard")
    ref = fit_references([{"pair_score": score - 0.5 + d} for d in (-0.05, 0.0, 0.05)], [0] * 3,
                         {"pair_score": 1}, 3.0)["pair_score"]
    cal.references = {**cal.references, "pair_score": ref}
    cal.detectors["pair"] = {"score_threshold": ref["mean"] + 3 * ref["sd"], "classes": CLASSES}
    cal_path = tmp_path / "cal.json"
    cal_path.write_text(cal.to_json())
    out = tmp_path / "report"
    code = cli_exit_code(["--threads", "1", "scan", str(paths["source-specific"]), "--clean-data", str(clean_data),
                          "--detectors", "pair-trigger", "--calibration", str(cal_path), "--out", str(out), "--quiet"])
    verdict = json.loads((out / "report.json").read_text())["verdict"]
    assert code == 1 and verdict["status"] == "BACKDOORED", verdict["summary"]
    assert verdict["pattern"] == "source-specific" and verdict["suspected_targets"][0]["label"] == attack.target
    assert f"source class, {attack.source} (" in verdict["summary"], verdict["summary"]


def test_not_applied_to_other_class_counts_nor_at_fast():
    from tiny_gratings import make_data, train_poisoned

    from modelscan_bd.cleandata import from_arrays
    from modelscan_bd.registry import select

    adapter = train_poisoned(0, epochs=1)  # 10 classes
    x, y = make_data(40, torch.Generator().manual_seed(1))
    context = ScanContext(seed=0, budget="standard", clean=from_arrays(x, y, adapter))
    context.results["calibration"] = {"pair": {"classes": 43}}
    (f,) = PairTriggerDetector().run(adapter, context)
    assert f.status == "passed" and f.evidence["applied"] is False and "43-class" in f.message
    assert "pair-trigger" not in context.results  # so the verdict's feature stays unmeasured
    assert "pair-trigger" not in {c.id for c in select("classifier", "fast")}
    assert "pair-trigger" in {c.id for c in select("classifier", "standard")}
