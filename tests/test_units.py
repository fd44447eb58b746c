"""Unit tests of the pieces before and after detection: sources, safety, families,
clean data, registry, verdict. Small synthetic inputs, no training."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from conftest import write_json
from modelscan_bd.errors import CorruptFileError, InputError, SourceError
from modelscan_bd.families import identify
from modelscan_bd.safety import check_safetensors_header, look_at_pickle_file, pickle_globals
from modelscan_bd.sources import parse_source, resolve


class _System:
    def __reduce__(self):
        return (os.system, ("echo never",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_globals_finds_code_execution_at_every_protocol(protocol):
    look = pickle_globals(pickle.dumps(_System(), protocol=protocol))
    assert any(g.endswith(".system") for g in look.dangerous), look


def test_benign_pickle_has_no_dangerous_globals():
    look = pickle_globals(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    assert look.dangerous == [] and look.error is None


def test_torch_zip_checkpoint_is_read_statically(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_System(), protocol=2))
    assert look_at_pickle_file(path).dangerous


def test_garbage_pickle_reports_an_error_not_a_crash():
    assert pickle_globals(b"\x80\x04not a pickle").error


def test_safetensors_header_checks(tmp_path):
    from safetensors.torch import save_file

    good = tmp_path / "ok.safetensors"
    save_file({"w": torch.zeros(3)}, str(good))
    assert "w" in check_safetensors_header(good)
    bad = tmp_path / "bad.safetensors"
    data = good.read_bytes()
    bad.write_bytes((10**9).to_bytes(8, "little") + data[8:])
    with pytest.raises(CorruptFileError, match="bad.safetensors"):
        check_safetensors_header(bad)
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01")
    with pytest.raises(CorruptFileError, match="tiny.safetensors"):
        check_safetensors_header(tmp_path / "tiny.safetensors")


@pytest.mark.parametrize("text,expected", [
    ("org/name", ("org/name", None)), ("org/name@v1.0", ("org/name", "v1.0")),
    ("hf://org/name@abc", ("org/name", "abc"))])
def test_parse_hub_sources(text, expected):
    repo, rev, local = parse_source(text)
    assert (repo, rev) == expected and local is None


def test_parse_local_and_bad_sources(tmp_path):
    assert parse_source(str(tmp_path))[2] == tmp_path
    assert parse_source("./some/dir/x")[2] is not None
    with pytest.raises(SourceError):
        parse_source("hf://bad id with spaces")


def test_local_snapshot_records_files(tmp_path):
    write_json(tmp_path / "config.json", {"a": 1})
    (tmp_path / "w.bin").write_bytes(b"x")
    snap = resolve(str(tmp_path))
    formats = {r.path: r.format for r in snap.files}
    assert formats == {"config.json": "json", "w.bin": "pickle"}
    assert all(len(r.sha256) == 64 for r in snap.files)


@pytest.mark.parametrize("files,family", [
    ({"model_index.json": {"_class_name": "DDPMPipeline"}}, "diffusion"),
    ({"open_clip_config.json": {"model_cfg": {}}}, "clip"),
    ({"config.json": {"model_type": "clip"}}, "clip"),
    ({"config.json": {"architectures": ["ViTForImageClassification"]}}, "classifier"),
    ({"config.json": {"architecture": "resnet18", "num_classes": 10}}, "classifier"),
    ({"config.json": {"architectures": ["GPT2LMHeadModel"]}}, "unsupported"),
    ({"config.json": {"architectures": ["ViTForImageClassification"], "auto_map": {"x": "y"}}}, "unsupported"),
    ({"README.md": "hi"}, "unsupported"),
])
def test_family_from_json_only(tmp_path, files, family):
    for name, content in files.items():
        if isinstance(content, dict):
            write_json(tmp_path / name, content)
        else:
            (tmp_path / name).write_text(content)
    assert identify(resolve(str(tmp_path))).name == family


def test_corrupt_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(CorruptFileError, match="config.json"):
        identify(resolve(str(tmp_path)))


class _TinyNet(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, classes)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def _adapter(classes=3):
    from modelscan_bd.adapters.load_classifier import adapter_from_module

    torch.manual_seed(0)
    return adapter_from_module(_TinyNet(classes), input_size=(3, 8, 8), mean=0.5, std=0.5,
                               labels=["cat", "dog", "ship"][:classes])


def test_adapter_from_module_leaves_the_callers_module_alone():
    from modelscan_bd.adapters.load_classifier import adapter_from_module

    net = _TinyNet().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    adapter = adapter_from_module(net, input_size=(3, 8, 8), mean=0.5, std=0.5)
    assert net.training and not adapter.model.training
    assert net.conv.weight.is_contiguous()  # not switched to channels-last
    assert adapter.model.net.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_adapter_from_module_rejects_wrong_size():
    from modelscan_bd.adapters.load_classifier import adapter_from_module

    class Fixed(nn.Module):
        def forward(self, x):
            return x.reshape(len(x), 3 * 8 * 8)[:, :3]

    with pytest.raises(InputError, match="3x9x9"):
        adapter_from_module(Fixed(), input_size=(3, 9, 9), mean=0.5, std=0.5)


def test_clean_data_folder_labels_follow_model_label_names(tmp_path):
    from PIL import Image

    from modelscan_bd.cleandata import load_clean_data

    adapter = _adapter()
    rng = np.random.default_rng(0)
    for cls in ("dog", "cat"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = load_clean_data(tmp_path, adapter, budget=500, seed=0)
    assert data.images.shape == (12, 3, 8, 8) and float(data.images.max()) <= 1.0
    assert set(data.labels.tolist()) <= {0, 1, 2}
    assert len(set(data.exposure_idx.tolist()) & set(data.holdout_idx.tolist())) == 0


def test_clean_data_npz_out_of_range_labels_use_predictions(tmp_path):
    from modelscan_bd.cleandata import load_clean_data

    adapter = _adapter()
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((20, 8, 8, 3), np.uint8), labels=np.full(20, 7))
    data = load_clean_data(path, adapter, budget=10)
    assert len(data.images) == 10 and data.label_source.startswith("model predictions")


def test_clean_data_rejects_pickled_npz(tmp_path):
    from modelscan_bd.cleandata import load_clean_data

    path = tmp_path / "d.npz"
    np.savez(path, images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError):
        load_clean_data(path, _adapter())


def test_a_crashing_detector_becomes_errored_and_others_still_report(monkeypatch):
    from modelscan_bd.cleandata import from_arrays
    from modelscan_bd.detectors.trigger import TriggerRecoveryDetector
    from modelscan_bd.reports import validate_report
    from modelscan_bd.scan import ScanConfig, scan_classifier

    def boom(self, target, context):
        raise RuntimeError("kaput")

    monkeypatch.setattr(TriggerRecoveryDetector, "run", boom)
    adapter = _adapter()
    clean = from_arrays(torch.rand(40, 3, 8, 8), None, adapter)
    outcome = scan_classifier(adapter, clean, ScanConfig(budget="fast"))
    validate_report(outcome.report)
    status = {f["detector"]: f["status"] for f in outcome.report["findings"]}
    assert status["trigger-recovery"] == "errored"
    assert status["exposure-collapse"] in ("passed", "failed") and status["mmbd"] in ("passed", "failed", "skipped")
    assert any("trigger-recovery errored" in r for r in outcome.report["verdict"]["incomplete_reasons"])
    assert outcome.exit_code in (1, 3)


def test_budget_fallback_runs_the_budget_the_calibration_names_for_that_architecture(tmp_path):
    """A calibration whose ``budget_fallbacks`` name a model's architecture (the shipped standard
    file names ViTs) makes a scan asked for its budget run the named one, judged by that budget's
    shipped file, and the report says so; --no-budget-fallback runs the budget asked for."""
    import json

    from modelscan_bd.cleandata import from_arrays
    from modelscan_bd.reports import validate_report
    from modelscan_bd.scan import ScanConfig, scan_classifier
    from modelscan_bd.verdict import load_calibration

    shipped = load_calibration(budget="standard")
    assert shipped.fallback_for("ViTForImageClassification")["budget"] == "fast"
    assert shipped.fallback_for("ResNetForImageClassification") is None
    file = tmp_path / "cal.json"
    file.write_text(json.dumps({**json.loads(shipped.to_json()), "budget_fallbacks": [
        {"architectures": ["_TinyNet"], "budget": "fast", "why": "tiny nets are judged at fast"}]}))
    adapter = _adapter()
    clean = from_arrays(torch.rand(40, 3, 8, 8), None, adapter)
    runs = {}
    for fallback in (True, False):
        config = ScanConfig(budget="standard", calibration=str(file), detectors=["mmbd"], budget_fallback=fallback)
        runs[fallback] = scan_classifier(adapter, clean, config).report
        validate_report(runs[fallback])
    moved, kept = runs[True], runs[False]
    assert moved["config"]["budget"] == "fast" and moved["config"]["budget_fallback"] == {
        "requested": "standard", "ran": "fast", "why": "tiny nets are judged at fast"}
    assert moved["verdict"]["calibration"]["version"] == load_calibration(budget="fast").version
    assert "Scanned at budget fast, not standard: tiny nets are judged at fast" in moved["verdict"]["summary"]
    assert kept["config"]["budget"] == "standard" and "budget_fallback" not in kept["config"]
    assert kept["verdict"]["calibration"]["version"] == shipped.version


def test_bench_judges_a_fallen_back_record_by_the_file_of_the_budget_it_ran():
    """A bench record scanned at another budget than the run's (a budget fallback) is judged by
    that budget's shipped file, not by the run's calibration, and is never fitted on."""
    from modelscan_bd.bench import judge_for, metrics, split
    from modelscan_bd.bench_pool import per_model
    from modelscan_bd.verdict import load_calibration, probability

    standard, fast = load_calibration(budget="standard"), load_calibration(budget="fast")
    features = {f: 0.5 for f in standard.features}
    record = {"name": "m", "attack": "clean", "type": None, "backdoored": False, "target": None, "hard": False,
              "features": features, "suspected": [], "num_classes": 10, "seconds": 1.0, "peak_mb": 1.0,
              "architecture": "ViTForImageClassification"}
    assert judge_for(record, standard) is standard and judge_for({**record, "budget": "standard"}, standard) is standard
    assert judge_for({**record, "budget": "fast"}, standard).version == fast.version
    fast_p = probability(features, fast, 10, "ViTForImageClassification")[0]
    standard_p = probability(features, standard, 10, "ViTForImageClassification")[0]
    assert fast_p != standard_p
    ran_fast = {**record, "budget": "fast"}
    assert split([record, ran_fast], [], [], "standard") == ([record], [ran_fast])  # never fitted on
    assert per_model([ran_fast], standard, [])[0]["p"] == round(fast_p, 4)
    assert per_model([record], standard, [])[0]["p"] == round(standard_p, 4)
    cut = fast.cuts_for(10, "ViTForImageClassification")[0]
    assert metrics([ran_fast], standard)["fpr"] == float(fast_p >= cut)


def test_registry_lists_builtins_in_order():
    from modelscan_bd.registry import all_detectors, select

    ids = [c.id for c in all_detectors()]
    assert ids[:6] == ["mmbd", "exposure-collapse", "signal-trigger", "warp-trigger", "feature-trigger",
                       "trigger-recovery"]
    assert [c.id for c in select("classifier", "fast", ["mmbd"])] == ["mmbd"]
    # the fast calibration (also the merge gate's) is fitted on scans without signal-, warp- and
    # feature-trigger: they run from standard up
    for late in ("signal-trigger", "warp-trigger", "feature-trigger"):
        assert late not in [c.id for c in select("classifier", "fast")]
        assert late in [c.id for c in select("classifier", "standard")]


def test_verdict_fit_separates_and_is_deterministic():
    from modelscan_bd.verdict import fit_logistic

    rows = [{"a": float(i), "b": None if i % 3 else 1.0} for i in range(20)]
    labels = [int(i >= 10) for i in range(20)]
    fit1 = fit_logistic(rows, labels, features=("a", "b"))
    fit2 = fit_logistic(rows, labels, features=("a", "b"))
    assert fit1 == fit2 and fit1[2][0] > 0


def test_clean_reference_test_flags_on_its_own_and_only_beyond_its_cut(tmp_path):
    """A feature judged against clean references flags a model the combiner passes once it lies
    more than z_cut widened clean deviations beyond the clean mean, and does nothing when it was
    not measured; calibration files from before the references load as having none."""
    import json

    from modelscan_bd.verdict import Calibration, fit_calibration, load_calibration, probability, reference_tests

    clean = [{"dup": 0.0, "slope": v} for v in (1.05, 1.1, 1.15, 1.2, 1.25)]
    bad = [{"dup": v, "slope": 1.15} for v in (0.4, 0.6, 0.8)]
    cal = fit_calibration(clean + bad, [0] * 5 + [1] * 3, ("dup",), version="t", description="t",
                          references={"slope": -1})
    ref = cal.references["slope"]
    sd = (sum((v - 1.15) ** 2 for v in (1.05, 1.1, 1.15, 1.2, 1.25)) / 4) ** 0.5 * (1 + 1 / 5) ** 0.5
    assert ref["n"] == 5 and abs(ref["mean"] - 1.15) < 1e-9 and abs(ref["sd"] - sd) < 1e-9 and ref["z_cut"] == 3.0
    cut = 1.15 - 3 * sd
    low, above = {"dup": 0.0, "slope": cut - 0.05}, {"dup": 0.0, "slope": cut + 0.05}
    assert probability(low, cal)[0] > 0.5 > probability(above, cal)[0]
    assert probability(above, cal)[0] == probability({"dup": 0.0}, cal)[0]  # short of the cut it adds nothing
    assert reference_tests(low, cal)["slope"]["z"] > 3.0
    assert probability({"dup": 0.0, "slope": None}, cal)[0] == probability({"dup": 0.0}, cal)[0] < 0.5
    # the combiner's own flags stand whatever the reference says
    assert probability({"dup": 0.8, "slope": 1.3}, cal)[0] > 0.5
    old = {k: v for k, v in json.loads(cal.to_json()).items() if k != "references"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert load_calibration(tmp_path / "old.json").references == {}
    assert Calibration(**json.loads(cal.to_json())).references == cal.references


def test_tail_cut_recovers_an_exponential_quantile_and_is_no_lighter_than_a_normal():
    """Peaks over threshold: on an exponential sample the cut at alpha is the distribution's own
    (1 - alpha) quantile; on a normal sample it lies beyond the normal quantile (a heavier tail), but
    not far beyond."""
    import math
    from statistics import NormalDist

    from modelscan_bd.verdict import tail_cut

    n = 2000
    expo = [-math.log(1 - (i + 0.5) / n) for i in range(n)]
    assert abs(tail_cut(expo, 0.001)["cut"] - (-math.log(0.001))) < 0.1
    normal = [NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)]
    assert 3.0 < tail_cut(normal, 0.00135)["cut"] < 3.8
    assert tail_cut([1.0] * 30, 0.001)["cut"] == 1.0  # nothing above the 80th percentile: the largest value


def test_reference_fitted_with_a_tail_fires_from_its_tail_cut_in_either_direction():
    """With alpha and enough clean models, a reference test's cut is the tail's (written as the
    z_cut it amounts to), low-is-suspicious features mirrored; short of the cut the test only ranks;
    with too few clean models it keeps z_cut."""
    from modelscan_bd.verdict import TAIL_MIN, Calibration, fit_references, probability, reference_tests, tail_cut

    vals = [0.1 * i + 0.02 * i * i for i in range(40)]  # skewed: a long upper tail
    up = fit_references([{"f": v} for v in vals], [0] * 40, {"f": 1}, 3.0, alpha=0.003)["f"]
    assert abs(up["cut"] - tail_cut(vals, 0.003)["cut"]) < 1e-12
    assert abs(up["mean"] + up["z_cut"] * up["sd"] - up["cut"]) < 1e-9 and up["alpha"] == 0.003
    down = fit_references([{"f": -v} for v in vals], [0] * 40, {"f": -1}, 3.0, alpha=0.003)["f"]
    assert abs(down["cut"] + up["cut"]) < 1e-9 and abs(down["z_cut"] - up["z_cut"]) < 1e-9
    cal = Calibration(version="t", provisional=False, description="t", features=[], mean=[], scale=[], weights=[],
                      bias=-5.0, fill={}, backdoored_threshold=0.5, suspicious_threshold=0.5, detectors={},
                      references={"f": up})
    assert reference_tests({"f": up["cut"] + 1e-6}, cal)["f"]["p"] >= 0.5
    # short of the cut it ranks by the tail's chance and never reaches the SUSPICIOUS threshold
    short = [reference_tests({"f": up["tail"]["u"] + k * (up["cut"] - up["tail"]["u"]) / 4}, cal)["f"]["p"]
             for k in range(4)] + [reference_tests({"f": up["cut"] - 1e-9}, cal)["f"]["p"]]
    assert short == sorted(short) and short[0] < 0.01 and 0.49 < short[-1] < 0.5
    assert probability({"f": up["cut"] - 1e-9}, cal)[0] < cal.suspicious_threshold
    few = fit_references([{"f": v} for v in vals[:TAIL_MIN - 1]], [0] * (TAIL_MIN - 1), {"f": 1}, 3.0, alpha=0.003)
    assert few["f"]["z_cut"] == 3.0 and "cut" not in few["f"]


def test_with_a_combiner_tail_models_short_of_every_cut_rank_by_their_rarest_value_and_no_status_moves():
    """Short of every cut, a combiner clean tail makes the probability threshold x alpha / the smallest
    clean-tail chance (the combiner's logit among them): a model whose reference feature only a few per
    cent of clean models reach ranks above one the combiner merely likes; models short of every tail
    stay ordered; a combiner or reference flag is the shipped maximum; without the tail nothing changes."""
    import copy
    import math

    from modelscan_bd.verdict import (Calibration, calibrated_verdict, fit_combiner_tail, fit_references, probability,
                                      reference_tests, short_of_cuts_rank, status_for)

    vals = [0.1 * i + 0.02 * i * i for i in range(40)]
    ref = fit_references([{"f": v} for v in vals], [0] * 40, {"f": 1}, 3.0, alpha=0.003)["f"]
    plain = Calibration(version="t", provisional=False, description="t", features=["x"], mean=[0.0], scale=[1.0],
                        weights=[1.0], bias=-2.0, fill={}, backdoored_threshold=0.5, suspicious_threshold=0.5,
                        detectors={}, references={"f": ref})
    clean = [{"x": 2.0 * math.sin(i), "f": v} for i, v in enumerate(vals)]  # combiner logits -4..0 on clean models
    cal = copy.deepcopy(plain)
    cal.combiner_tail = fit_combiner_tail(clean, cal, 0.003)
    tail = cal.combiner_tail
    assert tail["n"] == 40 and tail["alpha"] == 0.003 and tail["beta"] > 0
    liked = {"x": 1.9, "f": vals[5]}  # the combiner's p 0.48, an ordinary reference value
    rare = {"x": 0.0, "f": ref["tail"]["u"] + 0.8 * (ref["cut"] - ref["tail"]["u"])}  # just short of the cut
    assert probability(liked, plain)[0] > probability(rare, plain)[0]  # the maximum: the combiner's 0.48 wins
    assert probability(rare, cal)[0] > probability(liked, cal)[0]  # as chances under clean models, the rare one
    # short of every tail's threshold the order stays, without ties
    low = [probability({"x": x, "f": 0.0}, cal)[0] for x in (1.0, 1.2, 1.4)]  # the combiner its rarest value
    assert low == sorted(low) and len(set(low)) == 3 and low[0] > 0
    # flags are the shipped maximum, and statuses never move
    for model in ({"x": 2.5, "f": vals[5]}, {"x": 0.0, "f": ref["cut"] + 0.1}, liked, rare, {"x": -3.0, "f": 0.0}):
        tests = reference_tests(model, cal)
        shipped, ranked = probability(model, plain)[0], probability(model, cal)[0]
        assert status_for(shipped, plain, False) == status_for(ranked, cal, False)
        if shipped >= 0.5:
            assert ranked == shipped and short_of_cuts_rank(shipped, model, tests, cal) is None
        else:
            assert ranked < 0.5
    assert probability({"x": 2.5, "f": None}, cal)[0] == probability({"x": 2.5}, plain)[0]
    # the verdict's evidence says which chance set the rank, and only where one did
    evidence = {name: calibrated_verdict(m, cal, [])[1].evidence.get("short_of_cuts")
                for name, m in (("rare", rare), ("liked", liked), ("flagged", {"x": 2.5, "f": vals[5]}))}
    assert evidence["rare"]["rarest"] == "f" and evidence["liked"]["rarest"] == "combiner"
    assert set(evidence["rare"]["clean_chances"]) == {"combiner", "f"} and evidence["flagged"] is None
    assert calibrated_verdict(rare, plain, [])[1].evidence.get("short_of_cuts") is None


def test_other_recipes_clean_models_raise_backdoored_and_keep_the_recipe_cut_as_suspicious():
    """Clean models of another recipe whose scores sit higher (same ranking) move BACKDOORED to
    the 5 % cut over every clean model seen; the fitting recipe's own cut becomes SUSPICIOUS; the
    weights do not change; a reference test that fires still reaches BACKDOORED."""
    from modelscan_bd.verdict import combiner_probability, fit_calibration, probability, reference_tests

    clean = [{"x": v / 10, "r": 1.0 + v / 100} for v in range(10)]
    bad = [{"x": 1.0 + v / 10, "r": 1.0} for v in range(10)]
    rows, labels = clean + bad, [0] * 10 + [1] * 10
    plain = fit_calibration(rows, labels, ("x",), version="t", description="t", references={"r": 1})
    longer = [{"x": 0.75 + v / 20} for v in range(20)]  # shifted up, still below most backdoored
    cal = fit_calibration(rows, labels, ("x",), version="t", description="t", references={"r": 1},
                          other_recipes_clean=longer)
    assert cal.weights == plain.weights and cal.bias == plain.bias
    assert cal.suspicious_threshold == plain.backdoored_threshold < cal.backdoored_threshold <= 0.95
    every = sorted([combiner_probability(r, cal)[0] for r in clean + longer])
    assert sum(p >= cal.backdoored_threshold for p in every) <= 0.05 * len(every)
    assert cal.backdoored_threshold == every[int(0.95 * len(every))] + 1e-6
    # a reference test fires at its cut with the BACKDOORED threshold's probability, whatever that is
    ref = cal.references["r"]
    at_cut = {"x": 0.0, "r": ref["mean"] + ref["z_cut"] * ref["sd"] + 1e-9}
    assert abs(reference_tests(at_cut, cal)["r"]["p"] - cal.backdoored_threshold) < 1e-6
    assert probability({**at_cut, "r": at_cut["r"] + ref["sd"]}, cal)[0] > cal.backdoored_threshold
    assert fit_calibration(rows, labels, ("x",), version="t", description="t",
                           other_recipes_clean=[]).backdoored_threshold == plain.backdoored_threshold


def test_class_count_cuts_move_down_for_many_class_models_and_keep_the_weights():
    """Clean models of a larger class count whose scores sit lower get their own, lower cuts (5 %
    and 20 % of them flagged); the weights, and the cuts for fewer classes, stay; the verdict uses
    the model's class count."""
    import json

    from modelscan_bd.verdict import (Calibration, calibrated_verdict, fit_calibration, fit_class_cuts, probability,
                                      status_for)

    clean = [{"x": v / 10} for v in range(10)]
    bad = [{"x": 1.0 + v / 10} for v in range(10)]
    cal = fit_calibration(clean + bad, [0] * 10 + [1] * 10, ("x",), version="t", description="t")
    many = [{"x": 0.3 + v / 40} for v in range(20)]  # clean 43-class models: lower, on the same scale
    cut = fit_class_cuts(cal, many, 43, version="t+cuts43", description="d")
    assert cut.weights == cal.weights and cut.bias == cal.bias and cut.version == "t+cuts43" and cal.class_cuts == []
    backdoored, suspicious, entry = cut.cuts_for(43)
    assert entry["min_classes"] == 43 and entry["clean_models"] == 20
    assert 0.25 <= suspicious <= backdoored < cal.backdoored_threshold
    scores = [probability(r, cal)[0] for r in many]
    assert sum(p >= backdoored for p in scores) <= 1 and sum(p >= suspicious for p in scores) <= 4
    assert cut.cuts_for(10) == (cal.backdoored_threshold, cal.suspicious_threshold, None)
    assert cut.cuts_for(None)[2] is None and cut.cuts_for(100)[2] == entry
    # a model between the two BACKDOORED cuts: flagged as a 43-class model, not as a 10-class one
    row = next({"x": x / 100} for x in range(200) if backdoored <= probability({"x": x / 100}, cal)[0])
    assert probability(row, cal)[0] < cal.backdoored_threshold
    assert status_for(probability(row, cal)[0], cut, False, 43) == "BACKDOORED"
    assert status_for(probability(row, cal)[0], cut, False, 10) != "BACKDOORED"
    verdict, finding = calibrated_verdict(row, cut, [], num_classes=43)
    assert verdict["status"] == "BACKDOORED" and finding.threshold == backdoored
    assert finding.evidence["class_cut"] == entry and finding.evidence["suspicious_threshold"] == suspicious
    assert calibrated_verdict(row, cut, [], num_classes=10)[0]["status"] != "BACKDOORED"
    assert Calibration(**json.loads(cut.to_json())).cuts_for(43) == cut.cuts_for(43)  # the file keeps them
    # refitting the same class count replaces its entry; clean models scoring higher never raise the cuts
    high = fit_class_cuts(cut, [{"x": 3.0}] * 5, 43, version="t2", description="d2")
    assert len(high.class_cuts) == 1
    assert high.cuts_for(43)[:2] == (cal.backdoored_threshold, cal.suspicious_threshold)


def test_class_count_combiner_scores_models_of_that_class_count():
    """A class count can carry a combiner of its own: here a feature the file ignores separates
    many-class models. Models of that class count are scored and judged by it, other class counts
    by the file's; the file keeps it, and refitting that class count's cuts keeps it too."""
    import json

    from modelscan_bd.verdict import (Calibration, calibrated_verdict, fit_calibration, fit_class_combiner,
                                      fit_class_cuts, probability)

    rows = [{"x": v / 10, "y": 0.5} for v in range(10)] + [{"x": 1.0 + v / 10, "y": 0.5} for v in range(10)]
    cal = fit_calibration(rows, [0] * 10 + [1] * 10, ("x", "y"), version="t", description="t")
    # 43-class models: x says nothing, y separates them
    many = [{"x": 0.9, "y": v / 10} for v in range(10)] + [{"x": 0.9, "y": 1.0 + v / 10} for v in range(10)]
    labels = [0] * 10 + [1] * 10
    out = fit_class_combiner(cal, many, labels, many[:10], 43, version="t+c43", description="d")
    assert cal.class_cuts == [] and out.version == "t+c43" and out.weights == cal.weights
    backdoored, suspicious, entry = out.cuts_for(43)
    assert 0.5 <= backdoored <= 0.9 and 0.25 <= suspicious <= backdoored and entry["clean_models"] == 10
    ys = [probability(r, out, 43)[0] for r in many]
    assert max(ys[:10]) < backdoored <= min(ys[10:])  # the new combiner separates them at its cut
    assert len({round(probability(r, cal)[0], 6) for r in many}) == 1  # the file's cannot
    for r in many:  # fewer classes, or none known: the file's combiner
        assert probability(r, out, 10) == probability(r, cal) == probability(r, out)
    planted = many[-1]
    assert calibrated_verdict(planted, out, [], num_classes=43)[0]["status"] == "BACKDOORED"
    assert calibrated_verdict(many[0], out, [], num_classes=43)[0]["status"] == "CLEAN"
    again = Calibration(**json.loads(out.to_json()))
    assert [probability(r, again, 43) for r in many] == [probability(r, out, 43) for r in many]
    recut = fit_class_cuts(out, many[:5], 43, version="t+c43+cuts43", description="d2")
    assert recut.cuts_for(43)[2]["combiner"] == entry["combiner"]
    assert [probability(r, recut, 43) for r in many] == [probability(r, out, 43) for r in many]
    # cuts for more classes than the combiner's entry starts at: the same combiner judges them
    wider = fit_class_combiner(cal, many, labels, many[:10], 20, version="t+c20", description="d")
    recut = fit_class_cuts(wider, many[:5], 43, version="t+c20+cuts43", description="d2")
    assert [c["min_classes"] for c in recut.class_cuts] == [20, 43]
    assert [probability(r, recut, 43) for r in many] == [probability(r, wider, 30) for r in many]


def test_architecture_cuts_rise_for_that_architecture_only():
    """Clean models of another architecture that score higher under the file's weights get cuts of
    their own (5 % and 20 % of them flagged), for models of that architecture in the class range of
    the judge they were fitted under; other architectures, unknown ones and other class ranges keep
    their cuts; cuts never fall below the judge's, and class-count refits leave the entry alone."""
    import json

    from modelscan_bd.verdict import (Calibration, calibrated_verdict, fit_architecture_cuts, fit_calibration,
                                      fit_class_combiner, fit_class_cuts, probability)

    vit = "ViTForImageClassification"
    rows = [{"x": v / 10} for v in range(10)] + [{"x": 1.0 + v / 10} for v in range(10)]
    labels = [0] * 10 + [1] * 10
    cal = fit_calibration(rows, labels, ("x",), version="t", description="t")
    wide = fit_class_combiner(cal, rows, labels, rows[:10], 20, version="t+c20", description="d")
    clean_vits = [{"x": 0.8 + v / 40} for v in range(20)]  # clean ViTs: higher on the same scale
    out = fit_architecture_cuts(wide, clean_vits, vit, 10, version="t+vit", description="d")
    assert out.weights == wide.weights and out.version == "t+vit" and len(wide.class_cuts) == 1
    backdoored, suspicious, entry = out.cuts_for(10, vit)
    assert entry["architectures"] == [vit] and entry["min_classes"] == 1 and entry["max_classes"] == 19
    assert wide.backdoored_threshold < backdoored <= 0.999 and wide.suspicious_threshold <= suspicious <= backdoored
    scores = [probability(r, out, 10, vit)[0] for r in clean_vits]
    assert scores == [probability(r, wide, 10)[0] for r in clean_vits]  # the same combiner scores them
    assert sum(p >= backdoored for p in scores) <= 1 and sum(p >= suspicious for p in scores) <= 4
    for n, arch in ((10, None), (10, "ResNetForImageClassification"), (43, vit), (None, vit)):
        assert out.cuts_for(n, arch) == wide.cuts_for(n, arch)  # not a ViT, or outside its class range
    row = clean_vits[-1]  # the highest clean ViT: flagged as a ResNet, not as a ViT
    assert calibrated_verdict(row, out, [], num_classes=10)[0]["status"] == "BACKDOORED"
    verdict, finding = calibrated_verdict(row, out, [], num_classes=10, architecture=vit)
    assert verdict["status"] != "BACKDOORED" and finding.threshold == backdoored
    assert finding.evidence["class_cut"] == entry
    again = Calibration(**json.loads(out.to_json()))
    assert again.cuts_for(10, vit) == out.cuts_for(10, vit)
    # lower-scoring clean models never pull the cuts below the judge's
    low = fit_architecture_cuts(wide, [{"x": 0.0}] * 5, vit, 10, version="t2", description="d2")
    assert low.cuts_for(10, vit)[:2] == wide.cuts_for(10)[:2]
    # a refit of a class count's cuts keeps the architecture entry; 43-class ViTs get their judge's combiner
    recut = fit_class_cuts(out, rows[:5], 20, version="t3", description="d3")
    assert recut.cuts_for(10, vit)[2] == entry
    many = fit_architecture_cuts(wide, clean_vits, vit, 43, version="t4", description="d4")
    entry43 = many.cuts_for(43, vit)[2]
    assert entry43["min_classes"] == 20 and "max_classes" not in entry43
    assert entry43["combiner"] == wide.cuts_for(43)[2]["combiner"]
    assert [probability(r, many, 43, vit) for r in rows] == [probability(r, wide, 43) for r in rows]


def test_refitted_class_cuts_replace_the_shipped_cuts_version_tag(tmp_path):
    """`bench --cuts-only` on a class count the shipped file already has cuts for: the new
    version names the combiner and the new cuts once, not the old cuts' tag as well."""
    from modelscan_bd.bench import class_cuts_records
    from modelscan_bd.verdict import FEATURES, load_calibration

    shipped = load_calibration(budget="standard")
    assert shipped.class_cuts, "the standard file ships cuts for a class count"
    n = shipped.class_cuts[-1]["min_classes"]
    fit = [{"backdoored": False, "features": {f: shipped.fill.get(f, 0.0) for f in FEATURES}}] * 3
    cal = class_cuts_records(fit, tmp_path, n, "standard")
    assert cal.version.count(f"+cuts{n}-") == 1 and cal.version != shipped.version
    assert cal.version.split(f"+cuts{n}-")[0] == shipped.version.split(f"+cuts{n}-")[0]
    assert len(cal.class_cuts) == len(shipped.class_cuts) and cal.cuts_for(n)[2]["clean_models"] == 3


def test_architecture_cuts_records_fit_on_that_architectures_clean_models(tmp_path):
    """`bench --cuts-only --architecture NAME`: only clean records of that architecture (their own
    name, or their zoo's for older records) set the cuts; a refit replaces the tag; none is an error."""
    import pytest

    from modelscan_bd.bench import architecture_cuts_records, metrics
    from modelscan_bd.errors import UsageError
    from modelscan_bd.verdict import FEATURES, load_calibration

    shipped = load_calibration(budget="fast")
    vit = "ViTForImageClassification"
    high = {f: shipped.mean[shipped.features.index(f)] + 3 * shipped.scale[shipped.features.index(f)]
            * (1 if shipped.weights[shipped.features.index(f)] > 0 else -1) for f in shipped.features}
    low = {f: shipped.fill.get(f, 0.0) for f in FEATURES}
    fit = ([{"backdoored": False, "arch": "vit", "features": high}] * 3
           + [{"backdoored": False, "architecture": "ResNetForImageClassification", "features": low}] * 3
           + [{"backdoored": True, "arch": "vit", "features": high}])
    cal = architecture_cuts_records(fit, tmp_path, 10, "fast", vit)
    backdoored, _, entry = cal.cuts_for(10, vit)
    assert entry["clean_models"] == 3 and backdoored > shipped.backdoored_threshold
    assert cal.cuts_for(10, "ResNetForImageClassification") == shipped.cuts_for(10)
    again = architecture_cuts_records(fit[:2] + fit[3:], tmp_path, 10, "fast", vit).version
    assert again.count(f"+cuts-{vit}-") == 1 and again.split(f"+cuts-{vit}-")[0] == shipped.version
    # the bench's metrics judge each record by its architecture's cuts
    records = [{**r, "name": f"m{i}", "attack": "clean", "type": None, "target": None, "hard": False,
                "num_classes": 10, "suspected": [], "seconds": 1.0, "peak_mb": 1.0} for i, r in enumerate(fit[:6])]
    assert metrics(records, cal)["fpr"] == 0.0 and metrics(records, shipped)["fpr"] == 0.5
    with pytest.raises(UsageError, match="no clean"):
        architecture_cuts_records(fit[3:], tmp_path, 10, "fast", vit)


def test_exposure_consensus_runner_up_is_another_label():
    from modelscan_bd.exposure import ExposureResult, ExposureRun

    def run(top, share):
        hist = [0] * 10
        hist[top] = int(share * 100)
        hist[(top + 1) % 10] = 100 - hist[top]
        return ExposureRun("m", 0, None, 1, None, False, [], [10] * 10, hist, top, share)

    cons = ExposureResult("done", runs=[run(7, 0.3), run(7, 0.9), run(8, 0.9), run(8, 0.95)]).consensus()
    assert cons["label"] == 8 and cons["runner_up"] == 7 and cons["agreement"] == 0.5


def test_exposure_ranks_labels_by_mean_share_beyond_the_votes():
    """A label second in every run holds more mean share than labels that each top one run; it is
    ranked by share, and trigger recovery inverts it when the model has more than 10 classes."""
    from modelscan_bd.detectors.base import ScanContext
    from modelscan_bd.detectors.trigger import TriggerRecoveryDetector
    from modelscan_bd.exposure import ExposureResult, ExposureRun

    def run(top):
        hist = [0] * 43
        hist[top], hist[42] = 40, 35
        hist[(top + 7) % 42] = 25
        return ExposureRun("m", 0, None, 1, None, False, [], [10] * 43, hist, top, 0.4)

    cons = ExposureResult("done", runs=[run(k) for k in (3, 9, 15, 21)]).consensus()
    assert cons["runner_up"] != 42 and cons["label"] != 42
    assert [k for k, _ in cons["by_share"][:1]] == [42]
    assert abs(cons["by_share"][0][1] - 0.35) < 1e-9
    collapse = {"label": cons["label"], "runner_up": cons["runner_up"], "by_share": [k for k, _ in cons["by_share"]]}
    context = ScanContext(seed=0, budget="fast", results={"exposure-collapse": collapse, "mmbd": {"target": 5}})
    many = TriggerRecoveryDetector._candidates(context, 43)
    assert 42 in many and many[:3] == [cons["label"], cons["runner_up"], 5]
    assert TriggerRecoveryDetector._candidates(context, 10) == [cons["label"], cons["runner_up"], 5]


def test_shipped_classifier_calibrations_judge_a_typical_clean_model_clean():
    """A model whose every statistic is the median of the clean models a shipped file was fitted
    on (its ``fill``) is CLEAN under that file, for ten classes and for the many-class entries:
    a refit whose bias or cuts flag the typical clean model must not ship."""
    from modelscan_bd.verdict import load_calibration, probability, status_for

    for budget in ("fast", "standard"):
        cal = load_calibration(budget=budget)
        for classes in [10] + [c["min_classes"] for c in cal.class_cuts]:
            fill = cal.combiner_for(classes)[4]
            p = probability(dict(fill), cal, classes)[0]
            assert status_for(p, cal, False, classes) == "CLEAN", (budget, classes, p, cal.cuts_for(classes)[:2])


def test_shipped_classifier_calibration_per_budget():
    """Each budget gets the calibration fitted on scans at that budget; a budget without its own
    file falls back to the default one (fitted at `standard`, the scanner's default)."""
    from modelscan_bd.verdict import load_calibration

    assert load_calibration(budget="fast").budget == "fast"
    assert load_calibration(budget="standard").budget == "standard"
    assert load_calibration().version == load_calibration(budget="thorough").version == \
        load_calibration(budget="standard").version
    assert load_calibration(budget="fast").version != load_calibration().version
    assert load_calibration(budget="fast").describe()["budget"] == "fast"
    t2i = {b: load_calibration(family="text-to-image", budget=b) for b in ("fast", "standard", "thorough")}
    assert t2i["fast"].budget == "fast" and t2i["standard"].budget == t2i["thorough"].budget == "standard"


def test_architecture_combiner_judges_that_architecture_only(tmp_path):
    """`bench --calibrate --architecture NAME` (no --cuts-only): an entry with a combiner fitted on
    that architecture's records, cuts from its clean ones; other architectures keep the file's judge."""
    import json

    import pytest

    from modelscan_bd.bench import architecture_combiner_records, metrics
    from modelscan_bd.errors import UsageError
    from modelscan_bd.verdict import Calibration, load_calibration, probability

    shipped = load_calibration(budget="fast")
    vit, resnet = "ViTForImageClassification", "ResNetForImageClassification"
    base = {f: shipped.fill.get(f, 0.0) for f in shipped.features}

    def row(i, backdoored, arch):  # ViT backdoors differ from clean ViTs only in MM-BD's significance
        mmbd = 2.5 + i / 10 if backdoored else 0.3 + i / 20
        return {"name": f"{arch}-{i}-{backdoored}", "backdoored": backdoored, "arch": arch,
                "attack": "sig" if backdoored else "clean", "type": "all-to-one" if backdoored else None,
                "target": 1 if backdoored else None, "hard": False, "num_classes": 10, "suspected": [],
                "seconds": 1.0, "peak_mb": 1.0, "features": {**base, "mmbd_neglog10_p": mmbd}}

    fit = [row(i, b, "vit") for i in range(8) for b in (False, True)] + [row(i, False, "resnet") for i in range(4)]
    cal = architecture_combiner_records(fit, tmp_path, 10, "fast", vit)
    backdoored, suspicious, entry = cal.cuts_for(10, vit)
    assert entry["architectures"] == [vit] and entry["max_classes"] == 19 and entry["clean_models"] == 8
    assert "combiner" in entry and 0.5 <= backdoored <= 0.9 and suspicious <= backdoored
    assert cal.version.startswith(shipped.version) and f"+combiner-{vit}-" in cal.version
    assert cal.cuts_for(10, resnet) == shipped.cuts_for(10, resnet)  # ResNets: the file's own judge
    assert cal.cuts_for(43, vit) == shipped.cuts_for(43, vit)  # outside the class range it was fitted for
    vits = [r for r in fit if r["arch"] == "vit"]
    assert metrics(vits, cal)["auroc"] == 1.0 and metrics(vits, cal)["fpr"] == 0.0
    assert metrics(vits, cal)["tpr"] == 1.0
    r = fit[-1]["features"]
    assert probability(r, cal, 10, resnet) == probability(r, shipped, 10, resnet)
    again = Calibration(**json.loads(cal.to_json()))
    assert again.cuts_for(10, vit) == cal.cuts_for(10, vit)
    with pytest.raises(UsageError, match="one kind"):
        architecture_combiner_records([x for x in fit if not x["backdoored"]], tmp_path, 10, "fast", vit)


def test_anomaly_index_counts_the_small_side_only():
    from modelscan_bd.inversion import anomaly_index
    index, smallest = anomaly_index([0.10, 0.11, 0.09, 0.10, 0.02])
    assert smallest == 4 and abs(index - (0.10 - 0.02) / (1.4826 * 0.01)) < 1e-9
    index, smallest = anomaly_index([0.10, 0.11, 0.09, 0.10, 0.50])  # a large trigger is no outlier
    assert smallest == 2 and abs(index - 0.01 / (1.4826 * 0.01)) < 1e-9


def test_batched_slot_loss_equals_the_per_slot_loss():
    """Inversion scores every slot in one call; it must give each slot exactly its own loss and hits:
    cross-entropy towards its target, or for an untargeted slot the true label's margin over the best
    other, floored at -5."""
    import torch.nn.functional as F

    from modelscan_bd.inversion import UNTARGETED, _slot_losses
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 6, 4, generator=g) * 3
    y = torch.randint(4, (5, 6), generator=g)
    targets = torch.tensor([0, UNTARGETED, 3, 3, UNTARGETED])
    loss, hits = _slot_losses(logits, y, targets)
    for j, t in enumerate(targets.tolist()):
        if t == UNTARGETED:
            true = logits[j].gather(1, y[j][:, None])[:, 0]
            other = logits[j].scatter(1, y[j][:, None], float("-inf")).max(1).values
            want_loss, want_hits = (true - other).clamp(min=-5.0), logits[j].argmax(1) != y[j]
        else:
            want = torch.full_like(y[j], t)
            want_loss, want_hits = F.cross_entropy(logits[j], want, reduction="none"), logits[j].argmax(1) == want
        assert torch.equal(loss[j], want_loss) and torch.equal(hits[j], want_hits)
    only_targeted, _ = _slot_losses(logits[[0, 2]], y[[0, 2]], targets[[0, 2]])
    assert torch.equal(only_targeted, loss[[0, 2]])
