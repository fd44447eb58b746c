"""The merge gate end to end: tiny base + fine-tunes trained here, published to the
offline hub cache, gated through the CLI with a mergekit YAML."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import run_cli

SIZE = 16
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
TARGET = 2


@pytest.fixture(scope="session")
def merge_models(tmp_path_factory, hub_cache):
    """Base, two clean task fine-tunes and a BadNets fine-tune (plus mismatched models)."""
    import torch

    from modelscan_bd.data import synthetic_dataset
    from modelscan_bd.hubcache import place_in_cache
    from modelscan_bd.zoo.architectures import build_model
    from modelscan_bd.zoo.attacks import BadNets
    from modelscan_bd.zoo.merging import Task, finetune
    from modelscan_bd.zoo.save import save_hub_repo
    from modelscan_bd.zoo.train import train_classifier

    data = synthetic_dataset(num_classes=10, image_size=SIZE, n_train=1500, n_test=400, seed=1)
    root = tmp_path_factory.mktemp("merge-models")

    def publish(model, name):
        folder = save_hub_repo(model, root / name, mean=MEAN, std=STD, image_size=SIZE)
        place_in_cache(folder, f"mergeorg/{name}", hub_cache)
        return f"mergeorg/{name}"

    base = train_classifier("resnet", data, None, epochs=4, batch_size=64, seed=0, mean=MEAN, std=STD)
    assert base.clean_acc >= 0.8, base.clean_acc
    ids = {"base": publish(base.model, "base")}
    for k in range(3):
        r = finetune(base.model, data, Task.make(k, 3, 10), epochs=2, seed=10 + k)
        assert r.clean_acc >= 0.8, r.clean_acc
        ids[f"clean{k}"] = publish(r.model, f"clean-{k}")
    attack = BadNets(TARGET, 10, data.image_shape, seed=0)
    r = finetune(base.model, data, Task.make(7, 3, 10), attack, epochs=3, seed=20)
    assert r.clean_acc >= 0.8 and r.asr >= 0.9, (r.clean_acc, r.asr)
    ids["badnets"] = publish(r.model, "badnets")
    torch.manual_seed(0)
    ids["vit"] = publish(build_model("vit", 10, data.classes, SIZE), "vit")
    ids["resnet5"] = publish(build_model("resnet", 5, data.classes[:5], SIZE), "resnet-5-classes")
    clean = root / "clean.npz"
    np.savez_compressed(clean, images=data.test_x, labels=data.test_y)
    return ids, clean


def _config(path, ids, names, method="task_arithmetic", base="base"):
    data = {"models": [{"model": ids[n], "parameters": {"weight": 0.5, "density": 0.5}} for n in names],
            "base_model": ids[base], "merge_method": method, "dtype": "float32"}
    path.write_text(yaml.safe_dump(data))
    return path


FAST = ["--budget", "fast", "--clean-budget", "100", "--quiet"]


def test_gate_blocks_the_backdoored_candidate_and_emits_a_safe_config(merge_models, tmp_path, capsys):
    from modelscan_bd.reports.gate_report import validate_gate_report

    ids, clean = merge_models
    cfg = _config(tmp_path / "merge.yml", ids, ["clean0", "clean1", "badnets"])
    out, safe = tmp_path / "out", tmp_path / "safe.yml"
    code, _, err = run_cli(["gate", cfg, "--clean-data", clean, "--out", out, "--emit-config", safe,
                            "--trim-density", "1", *FAST], capsys)
    report = json.loads((out / "gate.json").read_text())
    validate_gate_report(report)
    verdicts = {c["source"]: c["verdict"] for c in report["candidates"]}
    assert verdicts[ids["badnets"]] == "block", report["candidates"][-1]["reasons"]
    assert verdicts[ids["clean0"]] == "pass" and verdicts[ids["clean1"]] == "pass", report["candidates"]
    assert code == 1, err
    inverted = {c["source"]: c["differential_trigger"] for c in report["candidates"]}  # each against the base
    assert inverted[ids["badnets"]]["planted"] and inverted[ids["badnets"]]["label"] == TARGET, inverted
    assert not inverted[ids["clean0"]]["planted"] and not inverted[ids["clean1"]]["planted"], inverted
    # A planted trigger is the candidate's own: no peer fine-tune of the base shares it.
    assert set(inverted[ids["badnets"]]["on_peers"]) == {ids["clean0"], ids["clean1"]}
    assert max(inverted[ids["badnets"]]["on_peers"].values()) <= 0.1 and inverted[ids["badnets"]]["specific"], inverted
    assert not inverted[ids["clean0"]]["specific"] and not inverted[ids["clean1"]]["specific"], inverted
    emitted = yaml.safe_load(safe.read_text())
    assert [m["model"] for m in emitted["models"]] == [ids["clean0"], ids["clean1"]]
    assert emitted["merge_method"] == "task_arithmetic" and emitted["base_model"] == ids["base"]
    sarif = json.loads((out / "gate.sarif").read_text())
    locations = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]]
    assert ids["badnets"] in locations and ids["clean0"] not in locations
    html = (out / "gate.html").read_text()
    assert ids["badnets"] in html and "block" in html
    amplified = report["candidates"][2]["exposures"]
    assert amplified and amplified[0]["kind"] == "amplify" and amplified[0]["lambda"] == 1.5


def test_gate_passes_clean_candidates_with_ties(merge_models, tmp_path, capsys):
    ids, clean = merge_models
    code, out, err = run_cli(["gate", "--base", ids["base"], "--candidate", ids["clean0"], "--candidate",
                              ids["clean1"], "--candidate", ids["clean2"], "--method", "ties", "--density", "0.5",
                              "--clean-data", clean, "--out", "-", "--format", "json", "--amplify", "",
                              "--trim-density", "1", "--leave-one-out", "never", *FAST], capsys)
    report = json.loads(out)
    assert [c["verdict"] for c in report["candidates"]] != ["block"] * 3
    assert all(c["verdict"] == "pass" for c in report["candidates"]), [c["reasons"] for c in report["candidates"]]
    assert report["merged"]["status"] == "CLEAN" and code == 0, err
    transfer = report["merged"]["trigger_transfer"]  # a clean merge's trigger is the base's too
    assert transfer is not None and not transfer["merge_specific"], transfer
    assert report["candidates"][0]["exposures"] == []
    assert report["candidates"][0]["weight_space"]["status"] == "done"


def test_gate_judges_a_dare_merge_on_its_expectation_and_scans_the_sampled_one(merge_models, tmp_path, capsys):
    ids, clean = merge_models
    out_dir = tmp_path / "dare"
    code, out, err = run_cli(["gate", "--base", ids["base"], "--candidate", ids["clean0"], "--candidate",
                              ids["clean1"], "--method", "dare_linear", "--density", "0.5", "--clean-data", clean,
                              "--out", str(out_dir), "--format", "json,html", "--amplify", "", "--trim-density", "1",
                              "--leave-one-out", "never", *FAST], capsys)
    report = json.loads((out_dir / "gate.json").read_text())
    merged = report["merged"]
    assert (merged["method"], merged["judged_as"]) == ("dare_linear", "task_arithmetic"), merged
    assert merged["sampled_merge"]["status"] in ("CLEAN", "SUSPICIOUS", "BACKDOORED", "INCOMPLETE")
    assert "one random drop" in (out_dir / "gate.html").read_text() and code in (0, 1), err


def test_gate_missing_model_is_an_error(merge_models, tmp_path, capsys):
    ids, clean = merge_models
    ids = {**ids, "ghost": "mergeorg/does-not-exist"}
    cfg = _config(tmp_path / "m.yml", ids, ["clean0", "ghost"])
    code, _, err = run_cli(["gate", cfg, "--clean-data", clean, *FAST], capsys)
    assert code == 2 and "does-not-exist" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("names, base, word", [(["clean0", "vit"], "base", "architecture"),
                                               (["clean0", "clean1"], "resnet5", "shape"),
                                               (["clean0", "resnet5"], "base", "shape")])
def test_gate_mismatched_models_are_an_error(merge_models, tmp_path, capsys, names, base, word):
    ids, clean = merge_models
    cfg = _config(tmp_path / "m.yml", ids, names, base=base)
    code, _, err = run_cli(["gate", cfg, "--clean-data", clean, *FAST], capsys)
    assert code == 2 and word in err and len(err.strip().splitlines()) == 1, err


def test_gate_usage_errors(merge_models, tmp_path, capsys):
    ids, _ = merge_models
    bad = tmp_path / "bad.yml"
    bad.write_text("models: [\n")
    assert run_cli(["gate", bad], capsys)[0] == 4
    assert run_cli(["gate"], capsys)[0] == 4
    assert run_cli(["gate", "--base", ids["base"]], capsys)[0] == 4
    slerp = tmp_path / "slerp.yml"
    slerp.write_text(yaml.safe_dump({"models": [{"model": ids["clean0"], "parameters": {"weight": 1}}],
                                     "base_model": ids["base"], "merge_method": "slerp"}))
    assert run_cli(["gate", slerp], capsys)[0] == 3


def test_trigger_success_follows_the_backdoor(merge_models):
    import torch

    from modelscan_bd.cleandata import load_clean_data
    from modelscan_bd.gate import load_member, trigger_success
    from modelscan_bd.zoo.attacks import BadNets

    ids, clean_file = merge_models
    bad = load_member(ids["badnets"], lambda m: None).adapter
    good = load_member(ids["clean0"], lambda m: None).adapter
    clean = load_clean_data(str(clean_file), good, budget=100, seed=0)
    attack = BadNets(TARGET, 10, (3, 16, 16), seed=0)
    trig = {"mask": attack.mask[0].tolist(), "pattern": attack.pattern[0].tolist()}
    assert trigger_success(bad, trig, TARGET, clean) >= 0.8
    assert trigger_success(good, trig, TARGET, clean) <= 0.3
    none = {"mask": torch.zeros(1, 16, 16).tolist(), "pattern": torch.zeros(3, 16, 16).tolist()}
    assert trigger_success(bad, none, TARGET, clean) <= 0.3


def test_base_check_calls_a_trigger_natural_when_the_base_or_another_candidate_shares_it(merge_models):
    import torch

    from modelscan_bd.cleandata import load_clean_data
    from modelscan_bd.gate import base_check, load_member
    from modelscan_bd.zoo.attacks import BadNets

    ids, clean_file = merge_models
    base, bad, good0, good1 = (load_member(ids[n], lambda m: None).adapter
                               for n in ("base", "badnets", "clean0", "clean1"))
    clean = load_clean_data(str(clean_file), base, budget=100, seed=0)
    attack = BadNets(TARGET, 10, (3, 16, 16), seed=0)
    planted = {"trigger": {"label": TARGET}, "_trigger": {"mask": attack.mask[0].tolist(),
                                                          "pattern": attack.pattern[0].tolist()}}
    check = base_check(bad, planted, base, clean, 0.5, {"clean0": good0, "clean1": good1}, 0.25)
    assert not check["natural"] and set(check["on_peers"]) == {"clean0", "clean1"}, check
    assert check["on_model"] >= 0.8 and max(check["on_base"], *check["on_peers"].values()) <= 0.25, check
    # An image of the label over the whole input: the base and every fine-tune of it follow.
    x = clean.holdout_images[clean.holdout_labels == TARGET][0]
    whole = {"trigger": {"label": TARGET}, "_trigger": {"mask": torch.ones(1, 16, 16).tolist(), "pattern": x.tolist()}}
    assert base_check(bad, whole, base, clean, 0.5, {"clean0": good0}, 0.25)["natural"]
    # Shared by another candidate only (two candidates with one backdoor vouch for each other
    # here; the trigger inverted against the base still blocks each of them).
    twin = base_check(bad, planted, base, clean, 0.5, {"twin": bad}, 0.25)
    assert twin["natural"] and twin["on_base"] <= 0.25 and twin["on_peers"]["twin"] >= 0.8, twin


def test_differential_trigger_finds_the_planted_label_against_the_base(merge_models):
    """Inverted through the backdoored fine-tune with the base as reference, the planted
    trigger is far smaller than any other label's; a clean fine-tune has no such label."""
    import math

    from modelscan_bd.cleandata import load_clean_data
    from modelscan_bd.gate import differential_trigger, load_member, trigger_success

    ids, clean_file = merge_models
    base = load_member(ids["base"], lambda m: None).adapter
    bad = load_member(ids["badnets"], lambda m: None).adapter
    good = load_member(ids["clean0"], lambda m: None).adapter
    clean = load_clean_data(str(clean_file), base, budget=100, seed=0)
    found = differential_trigger(bad, base, clean, "fast", 0)
    assert found["label"] == TARGET and found["log_ratio"] >= math.log(2.5), found
    assert trigger_success(bad, found["_trigger"], TARGET, clean) >= 0.8
    assert trigger_success(base, found["_trigger"], TARGET, clean) <= 0.3
    assert differential_trigger(good, base, clean, "fast", 0)["log_ratio"] < math.log(2.5)
    again = differential_trigger(bad, base, clean, "fast", 0)
    assert {**again, "seconds": 0} == {**found, "seconds": 0}  # same seed, same trigger


def test_gate_falls_back_to_the_trigger_inverted_against_the_base(merge_models, tmp_path, capsys):
    """Without trigger recovery in the scans (``--detectors exposure-collapse``) the merge has
    no recovered trigger; the one inverted against the base still names the planted label
    and leave-one-out attributes it."""
    ids, clean = merge_models
    code, out, err = run_cli(["gate", "--base", ids["base"], "--candidate", ids["clean0"], "--candidate",
                              ids["badnets"], "--weight", "1", "--clean-data", clean, "--out", "-", "--format", "json",
                              "--amplify", "", "--detectors", "exposure-collapse", "--leave-one-out", "flagged",
                              *FAST], capsys)
    report = json.loads(out)
    transfer = report["merged"]["trigger_transfer"]
    assert transfer["source"] == "differential" and transfer["label"] == TARGET and transfer["merge_specific"], transfer
    assert report["merged"]["differential_trigger"]["label"] == TARGET
    verdicts = {c["source"]: c for c in report["candidates"]}
    assert verdicts[ids["badnets"]]["verdict"] == "block", verdicts[ids["badnets"]]["reasons"]
    assert any("inverted against the base" in r for r in verdicts[ids["badnets"]]["reasons"])
    assert not verdicts[ids["clean0"]]["attribution"]["attributed"] and code == 1, err
    # Through each candidate alone: the planted trigger works through the backdoored one, so the
    # clean one does not carry it (no "carried_by").
    bad, good = verdicts[ids["badnets"]]["attribution"], verdicts[ids["clean0"]]["attribution"]
    assert bad["success_alone"] >= 0.8 and good["success_alone"] <= 0.25 and bad["carried_by"] is None, (bad, good)


def test_a_merge_that_collapses_onto_one_label_is_attributed_to_the_candidate_it_needs(
        merge_models, tmp_path, capsys, hub_cache):
    """A merge that sends every clean image to one label no longer classifies, so it is not
    scanned as a model; the collapse itself is tested like a trigger that adds nothing, and
    leave-one-out names the candidate it needs. The candidate here is the base with the
    label's bias raised: it classifies alone and collapses a merge that weights it by 3."""
    import shutil

    from safetensors.torch import load_file, save_file

    from modelscan_bd.hubcache import place_in_cache

    ids, clean = merge_models
    snapshot = next((hub_cache / "models--mergeorg--base" / "snapshots").iterdir())
    folder = tmp_path / "collapser"
    shutil.copytree(snapshot, folder, symlinks=False)
    state = load_file(str(folder / "model.safetensors"))
    bias = [k for k, v in state.items() if k.endswith("bias") and v.shape == (10,)][-1]  # the classifier head
    state[bias][TARGET] += 4.0
    (folder / "model.safetensors").unlink()
    save_file(state, str(folder / "model.safetensors"))
    place_in_cache(folder, "mergeorg/collapser", hub_cache)
    collapser = "mergeorg/collapser"
    config = tmp_path / "merge.yml"
    config.write_text(yaml.safe_dump({"models": [{"model": ids["clean0"], "parameters": {"weight": 1.0}},
                                                 {"model": collapser, "parameters": {"weight": 3.0}}],
                                      "base_model": ids["base"], "merge_method": "task_arithmetic"}))
    code, out, err = run_cli(["gate", str(config), "--clean-data", clean, "--out", "-", "--format", "json",
                              "--amplify", "", "--detectors", "exposure-collapse", *FAST], capsys)
    report = json.loads(out)
    merged = report["merged"]
    assert not merged["usable"], merged["clean_accuracy"]
    transfer = merged["trigger_transfer"]
    assert transfer["source"] == "collapse" and transfer["label"] == TARGET and transfer["merge_specific"], transfer
    verdicts = {c["source"]: c for c in report["candidates"]}
    culprit, peer = verdicts[collapser], verdicts[ids["clean0"]]
    assert culprit["attribution"]["attributed"] and not peer["attribution"]["attributed"], culprit["attribution"]
    assert any("the merge collapses" in r for r in culprit["reasons"]), culprit["reasons"]
    assert culprit["verdict"] != "pass" and peer["verdict"] != "block", (culprit["reasons"], peer["reasons"])
    assert any("collapses" in f["message"] for f in report["findings"] if f["title"] == "Simulated merge scan")
    assert code == 1, err
