"""Tests for the label-map detector (all-to-all backdoors) on tiny models trained in the test.

The data: 20 classes of 16x16 synthetic gratings. The backdoored model learns all-to-all
BadNets (the zoo's own attack: a 3x3 patch sends label y to y + 1); its clean twin has the same
recipe and seed. Twenty classes is the fewest the test applies to.
"""
from __future__ import annotations

import copy
import json

import pytest
import torch

from conftest import cli_exit_code, detector_context
from modelscan_bd.cleandata import from_arrays
from modelscan_bd.detectors.base import ScanContext
from modelscan_bd.detectors.label_map import DEFAULT_SPREAD, STARTS, LabelMapDetector, map_statistics
from modelscan_bd.verdict import (CLASS_REFERENCES, fit_class_cuts, load_calibration, probability, reference_tests,
                                  with_class_references)

CLASSES, SIZE = 20, 16
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_map_statistics_tell_a_permutation_from_a_sink():
    src = torch.arange(40) % 20
    perm = map_statistics(src, (src + 1) % 20)
    assert perm["n_dest"] == pytest.approx(20) and perm["purity"] == 1.0 and perm["spread"] == pytest.approx(20)
    sink = map_statistics(src, torch.full_like(src, 7))
    assert sink["spread"] == pytest.approx(1.0) and sink["n_src"] == 20
    # every image to a random label: many destinations, but no source keeps to one of them
    scattered = map_statistics(src, torch.randint(0, 20, (40,), generator=torch.Generator().manual_seed(0)))
    assert scattered["purity"] < 0.6 and scattered["spread"] < perm["spread"] / 2
    assert map_statistics(src[:0], src[:0])["spread"] == 0.0


def test_a_kept_start_goes_on_as_in_the_full_batch_and_a_dropped_one_stays_put():
    """v4's continuation: after ``keep`` the leading start follows its full-batch trajectory (its
    draws are still taken from the shared stream) and the others stay as they were when dropped."""
    from tiny_gratings import make_data, tiny_cnn

    from modelscan_bd.adapters.classifier import PixelClassifier
    from modelscan_bd.inversion import PATCH, UNTARGETED, Inversion, InversionSettings, Slot, invert

    torch.manual_seed(0)
    model = PixelClassifier(tiny_cnn(), MEAN, STD).eval()
    x, y = make_data(64, torch.Generator().manual_seed(1))
    slots, settings = [Slot(UNTARGETED, PATCH)] * 3, InversionSettings(steps=40, images_per_slot=8, success=0.9)
    full = invert(model, x, y, slots, settings, torch.Generator().manual_seed(2))
    run = Inversion(model, x, y, slots, settings, torch.Generator().manual_seed(2))
    run.run(20)
    at_20 = run.results()
    run.keep([1])
    run.run(20)
    after = run.results()
    assert run.steps_run == [20, 40, 20]
    for i in (0, 2):
        assert torch.equal(after[i].mask, at_20[i].mask) and after[i].size == at_20[i].size
    assert not torch.equal(after[1].mask, at_20[1].mask)
    assert torch.allclose(after[1].mask, full[1].mask, atol=1e-4)
    assert after[1].size == pytest.approx(full[1].size, abs=1e-5)
    assert after[1].loss_path == pytest.approx(full[1].loss_path, abs=1e-3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 20-class all-to-all tiny ResNet and its clean twin, saved as hub-format repos."""
    from modelscan_bd.data import synthetic_dataset
    from modelscan_bd.zoo.attacks import AllToAll
    from modelscan_bd.zoo.save import save_hub_repo
    from modelscan_bd.zoo.train import train_classifier

    data = synthetic_dataset(num_classes=CLASSES, image_size=SIZE, n_train=3000, n_test=400, seed=3)
    root = tmp_path_factory.mktemp("label-map")
    out = {}
    for name, attack in (("clean", None), ("all-to-all", AllToAll(None, CLASSES, data.image_shape, seed=0))):
        result = train_classifier("resnet", data, attack, poison_rate=0.2, epochs=8, batch_size=64, seed=0,
                                  mean=MEAN, std=STD)
        assert result.clean_acc >= 0.8 and (attack is None or result.asr >= 0.8), (name, result.clean_acc, result.asr)
        out[name] = save_hub_repo(result.model, root / name, mean=MEAN, std=STD, image_size=SIZE)
    clean_data = root / "clean.npz"
    import numpy as np

    np.savez_compressed(clean_data, images=data.test_x, labels=data.test_y)
    return out, clean_data


def _run_detector(path, clean_data):
    adapter, context = detector_context(path, clean_data, "thorough")
    return LabelMapDetector().run(adapter, context), context


def test_all_to_all_model_is_flagged_and_its_clean_twin_is_not(models):
    # At `thorough` (5 starts): the 3 starts of `standard` are a lottery (NOTES: "The starts are a
    # lottery"). At 300 steps seed 0's three all landed on sinks on one machine; at 600 (v3) one start
    # of three found the trigger at seeds 0 and 1, too thin a margin for a test.
    paths, clean_data = models
    (bad,), bad_ctx = _run_detector(paths["all-to-all"], clean_data)
    (good,), good_ctx = _run_detector(paths["clean"], clean_data)
    assert bad.status == "failed" and bad.rule_id == "MSBD-C006", bad.message
    assert bad_ctx.results["label-map"]["spread"] >= DEFAULT_SPREAD and bad_ctx.results["label-map"]["purity"] > 0.7
    assert good.status == "passed", good.message
    assert good_ctx.results["label-map"]["spread"] < DEFAULT_SPREAD
    assert {a.name for a in bad.artifacts} >= {"mask", "triggered"}
    assert len(bad.evidence["starts"]) == STARTS["thorough"]

    # The benchmark scores an all-to-all model's recovered trigger by label-map's map and mask: the
    # recovered trigger sends most held-out images to their own true destination. Its mask only partly
    # overlaps the patch (IoU 0.2 here; on GTSRB 0.0-0.2 at 300 steps, 0.2-0.8 at 600: docs/bench/label-map/NOTES.md).
    from modelscan_bd.bench import recovered_trigger
    from modelscan_bd.zoo.attacks import AllToAll

    attack = AllToAll(None, CLASSES, (3, SIZE, SIZE), seed=0)  # the fixture's attack, rebuilt
    truth, true_mask = {**attack.ground_truth(), "trigger_mask": "mask.png"}, attack.mask.numpy()
    source, success, iou = recovered_trigger(bad_ctx.results, truth, true_mask)
    assert source == "label-map" and success > 0.5 and iou > 0, (success, iou)
    assert recovered_trigger(good_ctx.results, truth, true_mask)[1] < 0.2  # the twin's patch keeps no map


def test_too_few_classes_is_not_applied_and_costs_nothing():
    from tiny_gratings import make_data, train_poisoned

    adapter = train_poisoned(0, epochs=1)  # 10 classes
    x, y = make_data(40, torch.Generator().manual_seed(1))
    context = ScanContext(seed=0, budget="standard", clean=from_arrays(x, y, adapter))
    (f,) = LabelMapDetector().run(adapter, context)
    assert f.status == "passed" and f.evidence["applied"] is False and "20 classes" in f.message
    assert "label-map" not in context.results  # so the verdict's feature stays unmeasured


def _with_reference(spreads):
    cal = load_calibration(budget="standard")
    cal.class_cuts = [c for c in cal.class_cuts if c["min_classes"] == 20]
    cal.class_cuts[0].pop("references", None)
    return with_class_references(cal, [{"label_map_spread": s} for s in spreads], 20, CLASS_REFERENCES,
                                 version="test", description="test")


def test_class_reference_applies_only_from_its_class_count():
    cal = _with_reference([2.5, 3.0, 3.5, 3.0, 2.8])
    features = {"label_map_spread": 20.0}
    assert "label_map_spread" in reference_tests(features, cal, 43)
    assert "label_map_spread" not in reference_tests(features, cal, 10)
    assert probability(features, cal, 10)[0] == probability({}, cal, 10)[0]  # at 10 classes the spread is ignored
    assert probability(features, cal, 43)[0] >= cal.cuts_for(43)[0]
    assert probability({"label_map_spread": 3.0}, cal, 43)[0] < cal.cuts_for(43)[1]
    # refitting that entry's cuts keeps its reference
    refit = fit_class_cuts(cal, [{}] * 5, 20, version="t2", description="t2")
    assert refit.class_cuts[0]["references"] == cal.class_cuts[0]["references"]
    with pytest.raises(ValueError):
        with_class_references(cal, [{"label_map_spread": 3.0}] * 2, 20, CLASS_REFERENCES, version="x",
                              description="x")
    with pytest.raises(ValueError):
        with_class_references(copy.deepcopy(cal), [{"label_map_spread": 3.0}] * 5, 7, CLASS_REFERENCES,
                              version="x", description="x")


def test_scan_cli_calls_an_all_to_all_model_backdoored(models, tmp_path):
    paths, clean_data = models
    cal = _with_reference([2.5, 3.0, 3.5, 3.0, 2.8])
    cal_path = tmp_path / "cal.json"
    cal_path.write_text(cal.to_json())
    out = tmp_path / "report"
    code = cli_exit_code(["--threads", "1", "scan", str(paths["all-to-all"]), "--clean-data", str(clean_data),
                          "--detectors", "label-map", "--calibration", str(cal_path), "--budget", "thorough",
                          "--out", str(out), "--quiet"])
    report = json.loads((out / "report.json").read_text())
    verdict = report["verdict"]
    assert code == 1 and verdict["status"] == "BACKDOORED", verdict["summary"]
    assert verdict["pattern"] == "all-to-all" and verdict["suspected_targets"] == []
    assert "all-to-all" in verdict["summary"]


def test_a_fixed_cut_replaces_the_deviation_rule():
    cal = load_calibration(budget="standard")
    cal.class_cuts = [c for c in cal.class_cuts if c["min_classes"] == 20]
    fixed = with_class_references(cal, [{"label_map_spread": s} for s in (2.5, 3.0, 3.5)], 20, CLASS_REFERENCES,
                                  version="t", description="t", fixed_cuts={"label_map_spread": 6.0})
    ref = fixed.class_cuts[0]["references"]["label_map_spread"]
    assert ref["cut"] == 6.0 and ref["mean"] + ref["z_cut"] * ref["sd"] == pytest.approx(6.0)
    assert reference_tests({"label_map_spread": 5.9}, fixed, 43)["label_map_spread"]["p"] == 0.0
    assert reference_tests({"label_map_spread": 6.01}, fixed, 43)["label_map_spread"]["p"] >= fixed.cuts_for(43)[0]


def test_not_selected_at_fast_budget():
    from modelscan_bd.registry import select

    assert "label-map" not in {c.id for c in select("classifier", "fast")}
    assert "label-map" in {c.id for c in select("classifier", "standard")}
