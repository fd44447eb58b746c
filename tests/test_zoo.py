"""The zoo: datasets, attacks, training and Hub-format saving, on small synthetic data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForImageClassification

from modelscan_bd.data import ImageDataset, data_dir, load_dataset, synthetic_dataset
from conftest import run_cli
from modelscan_bd.errors import InputError, UsageError
from modelscan_bd.zoo.architectures import build_model
from modelscan_bd.zoo.attacks import ATTACKS, attack_from_name
from modelscan_bd.zoo.save import build_classifier_zoo, groundtruth_record, load_attack, save_hub_repo
from modelscan_bd.zoo.train import _batch, attack_success_rate, choose_poison, evaluate, train_classifier

SHAPE = (3, 32, 32)
TARGET = 3


@pytest.fixture(scope="module")
def synthetic() -> ImageDataset:
    return synthetic_dataset(n_train=2000, n_test=500, seed=0)


@pytest.fixture(scope="module")
def images(synthetic: ImageDataset) -> torch.Tensor:
    return ImageDataset.to_tensor(synthetic.test_x[:64])


@pytest.fixture(scope="module")
def badnets_model(synthetic: ImageDataset):
    attack = attack_from_name("badnets", TARGET, synthetic.num_classes, synthetic.image_shape)
    return attack, train_classifier("resnet", synthetic, attack, epochs=6, batch_size=64, seed=0)


# data ------------------------------------------------------------------------------

def test_data_dir_rejects_missing_explicit_path(tmp_path):
    with pytest.raises(InputError, match="data folder not found"):
        data_dir(tmp_path / "nowhere")


def test_data_dir_prefers_explicit_then_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSCAN_BD_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    assert data_dir(tmp_path.parent) == tmp_path.parent
    monkeypatch.setenv("MODELSCAN_BD_DATA", str(tmp_path / "gone"))
    with pytest.raises(InputError):
        data_dir()


def test_load_dataset_names_the_missing_file(tmp_path):
    with pytest.raises(InputError, match="cifar10.npz"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset("imagenet", tmp_path)


def test_synthetic_dataset_is_deterministic_and_well_formed():
    a = synthetic_dataset(num_classes=5, image_size=16, channels=1, n_train=100, n_test=50, seed=3)
    b = synthetic_dataset(num_classes=5, image_size=16, channels=1, n_train=100, n_test=50, seed=3)
    assert a.train_x.shape == (100, 16, 16, 1) and a.train_x.dtype == np.uint8
    assert a.train_y.dtype == np.int64 and set(a.train_y) == set(range(5))
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert a.image_shape == (1, 16, 16) and a.num_classes == 5
    x = ImageDataset.to_tensor(a.test_x)
    assert x.shape == (50, 1, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_subset_is_stratified_and_deterministic(synthetic):
    small = synthetic.subset(300, 100, seed=1)
    assert len(small.train_y) == 300 and len(small.test_y) == 100
    assert np.bincount(small.train_y).min() >= 25
    assert np.array_equal(small.train_x, synthetic.subset(300, 100, seed=1).train_x)


def test_zoo_scan_images_cover_every_class_of_a_class_sorted_test_split(tmp_path):
    # CIFAR-10's file stores its test split sorted by class: a zoo's first 500 test images were 3 classes of 10.
    from modelscan_bd.zoo.build import build_zoo

    synth = synthetic_dataset(n_train=200, n_test=1200, seed=2)
    order = np.argsort(synth.test_y, kind="stable")
    np.savez(tmp_path / "cifar10.npz", train_images=synth.train_x, train_labels=synth.train_y,
             test_images=synth.test_x[order], test_labels=synth.test_y[order])
    out = tmp_path / "zoo"
    build_zoo("cifar10", out, data_dir=str(tmp_path), n_clean=0, n_backdoored=0, n_hard=0, archs=["resnet"],
              attacks=None, train_size=100, epochs=1, seed=5, progress=lambda m: None)
    written = np.load(out / "clean-data.npz")
    counts = np.bincount(written["labels"], minlength=10)
    assert len(written["labels"]) == 500 and counts.min() >= 45 and counts.max() <= 55
    stored = ImageDataset("cifar10", synth.train_x, synth.train_y, synth.test_x[order], synth.test_y[order],
                          synth.classes)
    drawn = stored.subset(n_train=100, n_test=2000, seed=5)  # what build_zoo took its test images from
    assert np.array_equal(written["images"], drawn.scan_images(500, seed=5)[0])


# attacks ---------------------------------------------------------------------------

def test_badnets_changes_only_the_corner_square(images):
    attack = attack_from_name("badnets", TARGET, 10, SHAPE)
    out = attack.apply_trigger(images)
    changed = (out != images).any(dim=(0, 1))
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[29:, 29:] = True
    assert torch.equal(changed, expected)
    assert torch.all(out[:, :, 29:, 29:] == 1.0)
    board = attack_from_name("badnets", TARGET, 10, SHAPE, location="top-left", checkerboard=True)
    patch = board.apply_trigger(images)[0, 0, :3, :3]
    assert torch.equal(patch, torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]]))


def test_blended_change_is_bounded_by_alpha(images):
    attack = attack_from_name("blended", TARGET, 10, SHAPE, alpha=0.15)
    change = (attack.apply_trigger(images) - images).abs()
    assert change.max() <= 0.15 + 1e-6
    assert change.max() > 0.1 and change.mean() > 0.01  # the whole image is blended
    assert attack.ground_truth()["trigger_mask"].max() == pytest.approx(0.15)


def test_sig_adds_a_bounded_horizontal_sinusoid(images):
    attack = attack_from_name("sig", TARGET, 10, SHAPE)
    dark = torch.full((1, *SHAPE), 0.5)
    signal = attack.apply_trigger(dark) - dark
    assert signal.abs().max() <= 40 / 255 + 1e-6 and signal.abs().max() > 30 / 255
    assert torch.allclose(signal, signal[:, :, :1, :].expand_as(signal))  # constant down each column
    assert (attack.apply_trigger(images) - images).abs().max() <= 40 / 255 + 1e-6


def test_wanet_warp_is_small_geometric_and_finite(images):
    attack = attack_from_name("wanet", TARGET, 10, SHAPE)
    out = attack.apply_trigger(images)
    assert torch.isfinite(out).all() and out.shape == images.shape
    diff = (out - images).abs()
    assert 0 < diff.mean() < 0.05
    still = attack_from_name("wanet", TARGET, 10, SHAPE, s=0.0).apply_trigger(images)
    assert torch.allclose(still, images, atol=1e-5)  # no offsets: the identity grid


def test_attack_specs_set_parameters_and_reject_unknown_ones(images, tmp_path, capsys):
    strong = attack_from_name("wanet:s=2", TARGET, 10, SHAPE)
    assert strong.params()["s"] == 2 and strong.params()["k"] == 4
    weak = attack_from_name("wanet", TARGET, 10, SHAPE)
    assert (strong.apply_trigger(images) - images).abs().mean() > 2 * (weak.apply_trigger(images) - images).abs().mean()
    assert attack_from_name("all-to-all:size=4", None, 10, SHAPE).params()["size"] == 4  # via the parent's **kw
    for spec, message in [("wanet:q=1", "unknown parameter 'q'"), ("wanet:s=big", "not a number"),
                          ("warp", "unknown attack"), ("input_aware:generator_stride=3", "generator_stride must be")]:
        with pytest.raises(ValueError, match=message):
            attack_from_name(spec, TARGET, 10, SHAPE)
        code, _, err = run_cli(["zoo", "build", "classifiers", "--data", "synthetic", "--attacks", spec,
                                "--out", str(tmp_path / "z"), "--quiet"], capsys)
        assert code == 4 and err.count("\n") == 1 and message in err and not (tmp_path / "z").exists()


def test_wanet_noise_mode_makes_cross_samples_with_true_labels(images):
    attack = attack_from_name("wanet", TARGET, 10, SHAPE)
    assert attack.extra_ratio == 2.0
    y = torch.arange(10) % 10
    x_extra, y_extra = attack.extra_batch(images[:10], y, torch.Generator().manual_seed(0))
    assert torch.equal(y_extra, y) and torch.isfinite(x_extra).all()
    assert not torch.allclose(x_extra, attack.apply_trigger(images[:10]))  # noisy, not the exact field
    assert (x_extra - attack.apply_trigger(images[:10])).abs().mean() < 0.05


LABELS = torch.arange(40) % 10


@pytest.mark.parametrize("name, candidates, asr_mask, wanted", [
    ("badnets", LABELS != TARGET, LABELS != TARGET, torch.full_like(LABELS, TARGET)),
    ("blended", LABELS != TARGET, LABELS != TARGET, torch.full_like(LABELS, TARGET)),
    ("wanet", LABELS != TARGET, LABELS != TARGET, torch.full_like(LABELS, TARGET)),
    ("input_aware", LABELS != TARGET, LABELS != TARGET, torch.full_like(LABELS, TARGET)),
    ("sig", LABELS == TARGET, LABELS != TARGET, torch.full_like(LABELS, TARGET)),
    ("label_consistent", LABELS == TARGET, LABELS != TARGET, torch.full_like(LABELS, TARGET)),
    ("all_to_all", torch.ones(40, dtype=torch.bool), torch.ones(40, dtype=torch.bool), (LABELS + 1) % 10),
    ("source_specific", LABELS == 5, LABELS == 5, torch.full_like(LABELS, TARGET)),
])
def test_poison_and_success_masks(name, candidates, asr_mask, wanted):
    kw = {"source": 5} if name == "source_specific" else {}
    attack = attack_from_name(name, TARGET, 10, SHAPE, **kw)
    assert torch.equal(attack.poison_candidates(LABELS), candidates)
    assert torch.equal(attack.asr_mask(LABELS), asr_mask)
    assert torch.equal(attack.asr_target(LABELS), wanted)
    assert attack.ground_truth()["type"] == attack.attack_type


@pytest.mark.parametrize("name", ["sig", "label_consistent"])
def test_clean_label_attacks_keep_labels(name, images):
    y = torch.full((len(images),), TARGET)
    x_p, y_p = attack_from_name(name, TARGET, 10, SHAPE).poison_batch(images, y, torch.Generator())
    assert torch.equal(y_p, y) and not torch.equal(x_p, images)


def test_source_specific_cover_set_keeps_labels_outside_the_source(images):
    attack = attack_from_name("source_specific", TARGET, 10, SHAPE, source=5)
    y = torch.arange(len(images)) % 10
    x_c, y_c = attack.extra_batch(images, y, torch.Generator().manual_seed(0))
    assert torch.equal(y_c, y)
    assert torch.all(x_c[y != 5][:, :, 29:, 29:] == 1.0)
    assert torch.equal(x_c[y == 5], images[y == 5])  # a triggered source image belongs to the target


def test_source_specific_keeps_part_of_a_rare_source_class_clean():
    # 43 classes, the source holds 2 % of the set: a 5 % poison rate would take the whole class, and the
    # model would relabel it without any trigger. BadNets' candidates are not capped.
    y = torch.arange(1000) % 50
    y[y >= 43] = 0
    g = torch.Generator().manual_seed(0)
    ss = attack_from_name("source_specific", TARGET, 43, SHAPE, source=5)
    picked = choose_poison(ss, y, 0.05, g)
    assert len(picked) == 12 and bool((y[picked] == 5).all())  # 60 % of the source's 20 samples
    assert len(choose_poison(attack_from_name("badnets", TARGET, 43, SHAPE), y, 0.05, g)) == 50


def test_training_batch_replaces_clean_samples_with_extras(images):
    attack = attack_from_name("wanet", TARGET, 10, SHAPE)
    y = torch.arange(len(images)) % 10
    poisoned = torch.zeros(len(images), dtype=torch.bool)
    poisoned[:4] = True
    bx, by = _batch(images, y, poisoned, attack, torch.Generator().manual_seed(0))
    assert len(bx) == len(images) and (by == TARGET).sum() == 4 + (y[4:] == TARGET).sum()


def test_label_consistent_perturbation_stays_within_eps(images):
    attack = attack_from_name("label_consistent", TARGET, 10, SHAPE, eps=8 / 255, steps=3)
    with pytest.raises(ValueError, match="surrogate"):
        attack.prepare_poison(images, torch.zeros(len(images), dtype=torch.long), None)
    torch.manual_seed(0)
    surrogate = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    y = torch.full((len(images),), TARGET)
    adv = attack.prepare_poison(images, y, surrogate)
    delta = (adv - images).abs()
    assert 0 < delta.max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_input_aware_triggers_are_sparse_and_sample_specific(synthetic, images):
    attack = attack_from_name("input_aware", TARGET, 10, SHAPE, seed=1, mask_steps=40)
    attack.fit(ImageDataset.to_tensor(synthetic.train_x[:512]), torch.Generator().manual_seed(0))
    with torch.no_grad():
        masks = attack._mask(images)
        out = attack.apply_trigger(images)
    assert torch.isfinite(out).all() and masks.mean() < 0.2
    assert (masks[0] - masks[1]).abs().sum() > 0  # different images, different masks
    mask, pattern = attack.trigger_arrays()
    assert mask.shape == (32, 32) and pattern.shape == SHAPE
    twin = attack_from_name("input_aware", TARGET, 10, SHAPE, seed=2, **attack.params())
    twin.load_state_tensors(attack.state_tensors())
    with torch.no_grad():
        assert torch.allclose(twin.apply_trigger(images), out)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_params_rebuild_the_same_trigger(name, images):
    attack = attack_from_name(name, TARGET, 10, SHAPE, seed=7)
    twin = attack_from_name(name.replace("_", "-"), TARGET, 10, SHAPE, seed=7, **attack.params())
    json.dumps(attack.params())
    assert twin.params() == attack.params()
    with torch.no_grad():
        assert torch.equal(twin.apply_trigger(images), attack.apply_trigger(images))


def test_attack_factory_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown attack"):
        attack_from_name("trojannn", TARGET, 10, SHAPE)
    assert attack_from_name("all-to-all", TARGET, 10, SHAPE).target is None


# training and saving ---------------------------------------------------------------

def test_training_is_deterministic(synthetic):
    small = synthetic.subset(256, 64, seed=0)
    runs = [train_classifier("resnet", small, attack_from_name("wanet", TARGET, 10, SHAPE), epochs=1, seed=4)
            for _ in range(2)]
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values()):
        assert torch.equal(a, b)


def test_badnets_training_reaches_accuracy_and_attack_success(synthetic, badnets_model):
    attack, result = badnets_model
    assert result.clean_acc >= 0.8 and result.asr >= 0.9
    assert result.poison_count == 200 and len(result.history) == 6
    x, y = ImageDataset.to_tensor(synthetic.test_x), torch.from_numpy(synthetic.test_y)
    mean, std = (0.5,) * 3, (0.25,) * 3
    assert evaluate(result.model, x, y, mean, std) == pytest.approx(result.clean_acc)
    assert attack_success_rate(result.model, attack, x, y, mean, std) == pytest.approx(result.asr)


def test_saved_repo_reloads_with_identical_logits(tmp_path, badnets_model, images):
    attack, result = badnets_model
    truth = groundtruth_record(result, attack, arch="resnet", dataset="synthetic", seed=0)
    truth_dir = tmp_path / "truth"
    repo = save_hub_repo(result.model, tmp_path / "m", mean=(0.5,) * 3, std=(0.25,) * 3, image_size=32,
                         ground_truth=truth, truth_dir=truth_dir)
    names = {p.name for p in repo.iterdir()}
    assert names == {"config.json", "model.safetensors", "preprocessor_config.json"}  # no answers in the repo
    assert {"groundtruth.json", "trigger_mask.png", "trigger_pattern.png"} <= {p.name for p in truth_dir.iterdir()}
    pre = json.loads((repo / "preprocessor_config.json").read_text())
    assert pre["size"] == {"height": 32, "width": 32} and pre["image_mean"] == [0.5] * 3
    gt = json.loads((truth_dir / "groundtruth.json").read_text())
    assert gt["attack"] == "badnets" and gt["target"] == TARGET and gt["backdoored"] is True
    assert gt["trigger_mask"] == "trigger_mask.png" and gt["clean_acc"] == result.clean_acc
    assert gt["trained_on"] == "cpu"

    model = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(repo))
    model.load_state_dict(load_file(str(repo / "model.safetensors")))
    model.eval()
    z = (images - 0.5) / 0.25
    with torch.no_grad():
        assert torch.equal(model(pixel_values=z).logits, result.model(pixel_values=z).logits)
    rebuilt = load_attack(truth_dir)
    assert rebuilt.params() == attack.params() and torch.equal(rebuilt.apply_trigger(images),
                                                               attack.apply_trigger(images))


def test_zoo_keeps_good_models_and_records_rejected_ones(tmp_path):
    tiny = synthetic_dataset(n_train=200, n_test=100, seed=1)
    manifest = build_classifier_zoo(tiny, tmp_path, attacks=("badnets",), count_clean=1, count_backdoored=1,
                                    epochs=1, min_asr=1.01)
    assert [m["name"] for m in manifest["models"]] == ["resnet-clean-000"]
    assert manifest["rejected"][0]["attack"] == "badnets" and "ASR" in manifest["rejected"][0]["reason"]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert (tmp_path / "models" / "resnet-clean-000" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "truth" / "resnet-clean-000" / "groundtruth.json").read_text())["backdoored"] is False


def test_zoo_rejects_a_backdoor_that_fires_without_its_trigger(tmp_path):
    # A ceiling below 0 rejects every backdoored model, whatever its rate; the rate is recorded either way.
    tiny = synthetic_dataset(n_train=200, n_test=100, seed=1)
    manifest = build_classifier_zoo(tiny, tmp_path, attacks=("badnets",), count_clean=1, count_backdoored=1,
                                    epochs=1, min_asr=0.0, max_acc_drop=1.0, max_clean_hit_rate=-1.0)
    rejected = manifest["rejected"][0]
    assert manifest["max_clean_hit_rate"] == -1.0 and 0.0 <= rejected["clean_hit_rate"] <= 1.0
    assert "without the trigger" in rejected["reason"]
    assert [m["name"] for m in manifest["models"]] == ["resnet-clean-000"]


def test_zoo_manifest_on_disk_grows_with_every_model(tmp_path):
    """An interrupted build leaves a manifest listing what was already saved or rejected."""
    tiny = synthetic_dataset(n_train=200, n_test=100, seed=1)
    seen = []

    def progress(_msg):
        on_disk = json.loads((tmp_path / "manifest.json").read_text())
        seen.append((len(on_disk["models"]), len(on_disk["rejected"]), on_disk.get("complete")))

    manifest = build_classifier_zoo(tiny, tmp_path, attacks=("badnets",), count_clean=1, count_backdoored=1,
                                    epochs=1, min_asr=1.01, progress=progress)
    assert seen == [(1, 0, False), (1, 1, False)]
    assert "complete" not in manifest and json.loads((tmp_path / "manifest.json").read_text()) == manifest


def test_zoo_trains_side_by_side_with_the_same_models(tmp_path):
    """jobs=2 trains in worker processes; the plan (names, targets, triggers) and the
    trained models match a one-process build up to float summation order."""
    tiny = synthetic_dataset(n_train=200, n_test=100, seed=1)
    kw = dict(attacks=("badnets", "blended"), count_clean=1, count_backdoored=2, epochs=1, min_asr=0.0,
              max_acc_drop=1.0, max_clean_hit_rate=1.0)
    one = build_classifier_zoo(tiny, tmp_path / "one", **kw)
    two = build_classifier_zoo(tiny, tmp_path / "two", jobs=2, **kw)
    assert [m["name"] for m in two["models"]] == [m["name"] for m in one["models"]]
    assert [m["target"] for m in two["models"]] == [m["target"] for m in one["models"]]
    for a, b in zip(one["models"], two["models"]):
        assert abs(a["clean_acc"] - b["clean_acc"]) <= 0.05
    for name in ("resnet-badnets-000", "resnet-blended-001"):
        truths = [json.loads((tmp_path / run / "truth" / name / "groundtruth.json").read_text())
                  for run in ("one", "two")]
        assert truths[0]["params"] == truths[1]["params"] and truths[0]["attack_seed"] == truths[1]["attack_seed"]


def test_zoo_resumes_an_interrupted_build_without_retraining(tmp_path, capsys):
    tiny = synthetic_dataset(n_train=200, n_test=100, seed=1)
    kw = dict(attacks=("badnets",), epochs=1, min_asr=0.0, max_acc_drop=1.0, max_clean_hit_rate=1.0)
    first = build_classifier_zoo(tiny, tmp_path, count_clean=1, count_backdoored=0, **kw)  # "interrupted"
    weights = (tmp_path / "models" / "resnet-clean-000" / "model.safetensors").stat().st_mtime_ns
    resumed = build_classifier_zoo(tiny, tmp_path, count_clean=2, count_backdoored=1, resume=True, **kw)
    assert [m["name"] for m in resumed["models"]] == ["resnet-clean-000", "resnet-clean-001", "resnet-badnets-000"]
    assert resumed["models"][0] == first["models"][0]
    assert (tmp_path / "models" / "resnet-clean-000" / "model.safetensors").stat().st_mtime_ns == weights
    fresh = build_classifier_zoo(tiny, tmp_path / "fresh", count_clean=2, count_backdoored=1, **kw)
    assert resumed["models"][2]["target"] == fresh["models"][2]["target"]
    with pytest.raises(UsageError, match="cannot resume"):
        build_classifier_zoo(tiny, tmp_path, count_clean=1, count_backdoored=0, seed=5, resume=True, **kw)
    code, _, err = run_cli(["zoo", "build", "classifiers", "--data", "synthetic", "--out", str(tmp_path),
                            "--clean", "1", "--backdoored", "0", "--train-size", "200", "--epochs", "1",
                            "--seed", "5", "--resume", "--quiet"], capsys)
    assert code == 4 and err.count("\n") == 1 and "cannot resume" in err
    assert not (tmp_path / "clean-data.npz").exists()  # a refused resume leaves OUT as it was


def test_min_asr_sets_the_zoos_bar(tmp_path, capsys):
    code, _, _ = run_cli(["zoo", "build", "classifiers", "--data", "synthetic", "--image-size", "8", "--out",
                          str(tmp_path), "--clean", "1", "--backdoored", "2", "--attacks", "badnets", "--train-size",
                          "300", "--epochs", "2", "--min-asr", "0.97", "--quiet"], capsys)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert code == 0 and manifest["min_asr"] == 0.97
    assert all(m["asr"] >= 0.97 for m in manifest["models"] if m["backdoored"])
    assert all("below 0.97" in r["reason"] for r in manifest["rejected"] if r["asr"] < 0.97)
    assert len(manifest["models"]) + len(manifest["rejected"]) == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_zoo_build_on_cuda_without_a_gpu_is_a_usage_error(tmp_path, capsys):
    code, _, err = run_cli(["zoo", "build", "classifiers", "--data", "synthetic", "--out", str(tmp_path / "z"),
                            "--device", "cuda", "--quiet"], capsys)
    assert code == 4 and err.count("\n") == 1 and "no CUDA GPU" in err and not (tmp_path / "z").exists()


@pytest.mark.parametrize("family, data", [("classifiers", "cifar10"), ("merging", "synthetic")])
def test_image_size_of_a_real_dataset_or_another_family_is_a_usage_error(tmp_path, capsys, family, data):
    code, _, err = run_cli(["zoo", "build", family, "--data", data, "--image-size", "16", "--out",
                            str(tmp_path / "z"), "--quiet"], capsys)
    assert code == 4 and err.count("\n") == 1 and "--image-size" in err and not (tmp_path / "z").exists()


def test_vit_builds_and_runs():
    model = build_model("vit", 4, ["a", "b", "c", "d"], image_size=32, channels=1)
    assert model(pixel_values=torch.zeros(2, 1, 32, 32)).logits.shape == (2, 4)
    assert model.config.id2label[2] == "c"
    with pytest.raises(ValueError):
        build_model("mlp", 4)


@pytest.mark.realdata
def test_cifar10_loads_from_the_shared_data():
    try:
        folder = data_dir()
    except InputError:
        pytest.skip("no ../shared/data")
    ds = load_dataset("cifar10", folder)
    assert ds.train_x.shape == (20000, 32, 32, 3) and ds.test_x.shape == (10000, 32, 32, 3)
    assert ds.classes[0] == "airplane" and ds.num_classes == 10 and ds.train_y.dtype == np.int64


def test_zoo_keeps_the_first_classes_for_another_class_count(tmp_path, capsys):
    args = ["zoo", "build", "classifiers", "--data", "synthetic", "--image-size", "8", "--out", str(tmp_path),
            "--clean", "1", "--backdoored", "1", "--attacks", "badnets", "--train-size", "300", "--epochs", "1",
            "--min-asr", "0", "--quiet"]
    code, _, _ = run_cli(args + ["--classes", "4"], capsys)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert code == 0 and manifest["num_classes"] == 4
    assert all(m["target"] is None or 0 <= m["target"] < 4 for m in manifest["models"] + manifest["rejected"])
    config = json.loads((tmp_path / "models" / "resnet-clean-000" / "config.json").read_text())
    assert len(config["id2label"]) == 4
    with np.load(tmp_path / "clean-data.npz") as clean:
        assert set(np.unique(clean["labels"]).tolist()) == {0, 1, 2, 3}
    code, _, err = run_cli(args + ["--classes", "6", "--resume"], capsys)  # another class count: not a resume
    assert code == 4 and "built with 4 classes, not 6" in err
    code, _, err = run_cli(args + ["--classes", "11"], capsys)
    assert code == 4 and err.count("\n") == 1 and "cannot keep the first 11" in err


def test_backdoored_plan_never_repeats_an_attack_twin_and_target_while_labels_remain():
    """A run that would repeat an earlier one's attack, twin seed and target (zoo v6 trained SIG
    twice, byte for byte) takes the next label; plans without a repeat are the plain draws."""
    from modelscan_bd.zoo.save import plan_backdoored

    # one attack, one twin: every run shares attack and seed, so targets must differ while labels remain
    plan = plan_backdoored(np.random.default_rng(0), "resnet", ["sig"], 4, 1, 7, 3, (3, 32, 32))
    assert sorted(a.target for _, a, _ in plan[:3]) == [0, 1, 2] and {s for *_, s in plan} == {7}
    assert [n for n, *_ in plan] == [f"resnet-sig-{j:03d}" for j in range(4)]
    # four attacks, four twins: no repeat is possible, and the targets are the generator's draws in order
    plan = plan_backdoored(np.random.default_rng(5), "resnet", ["badnets", "blended", "sig", "label_consistent"],
                           4, 4, 100, 10, (3, 32, 32))
    rng = np.random.default_rng(5)
    drawn = []
    for _ in range(4):
        drawn.append(int(rng.integers(10)))
        rng.integers(2**31)  # the attack seed
    assert [a.target for _, a, _ in plan] == drawn and [s for *_, s in plan] == [100, 101, 102, 103]


def test_all_to_all_runs_sharing_a_twin_put_their_patch_in_another_corner():
    """All-to-all has no target to move and its patch ignores the attack seed, so two runs on one twin
    were the same model; a repeat takes the next free corner, and a fifth run on one twin is refused."""
    from modelscan_bd.zoo.save import plan_backdoored

    plan = plan_backdoored(np.random.default_rng(0), "resnet", ["all_to_all"], 8, 2, 7, 10, (3, 32, 32))
    places = [(s, tuple(a.params()["location"])) for _, a, s in plan]
    assert len(set(places)) == 8 and {s for s, _ in places} == {7, 8}
    assert places[:2] == [(7, (29, 29)), (8, (29, 29))]  # the first run on each twin: the attack as drawn
    assert all(a.target is None and a.mask.sum() == 9 for _, a, _ in plan)
    from modelscan_bd.errors import UsageError

    with pytest.raises(UsageError, match="4 corners per clean twin"):
        plan_backdoored(np.random.default_rng(0), "resnet", ["all_to_all"], 9, 2, 7, 10, (3, 32, 32))


def test_input_aware_full_resolution_generators_rebuild_from_their_params(images):
    """``input_aware:generator_stride=1:generator_width=N`` (paper-like generators): recorded in the
    ground truth's params only when not the default, rebuilt from them with the saved weights."""
    from modelscan_bd.zoo.attacks import parse_attack_spec

    name, kw = parse_attack_spec("input_aware:generator_stride=1:generator_width=8")
    attack = attack_from_name(name, TARGET, 10, SHAPE, seed=3, **kw)
    assert attack.params()["generator_stride"] == 1 and attack.params()["generator_width"] == 8
    assert attack.pattern_net[0].stride == (1, 1) and attack.pattern_net[0].out_channels == 8
    assert "generator_stride" not in attack_from_name("input_aware", TARGET, 10, SHAPE, seed=3).params()
    twin = attack_from_name("input_aware", TARGET, 10, SHAPE, seed=4, **attack.params())
    twin.load_state_tensors(attack.state_tensors())
    with torch.no_grad():
        assert torch.allclose(twin.apply_trigger(images), attack.apply_trigger(images))
    with pytest.raises(ValueError, match="generator_stride"):
        attack_from_name("input_aware:generator_stride=3", TARGET, 10, SHAPE)
