"""Bad input ends in one line naming the problem and the documented exit code."""
from __future__ import annotations

import json
import pickle
import shutil

import pytest

from conftest import copy_repo, run_cli, write_json
from modelscan_bd.hubcache import place_in_cache


def _one_line_error(stderr: str, *words: str) -> None:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_unknown_hub_id_offline_miss(tmp_path, capsys):
    code, _, err = run_cli(["scan", "nobody/does-not-exist", "--out", tmp_path, "--quiet"], capsys)
    assert code == 2
    _one_line_error(err, "nobody/does-not-exist")


def test_malformed_source(tmp_path, capsys):
    code, _, err = run_cli(["scan", "not a model id!", "--out", tmp_path, "--quiet"], capsys)
    assert code == 2
    _one_line_error(err, "not a model id!")


def test_missing_local_folder(tmp_path, capsys):
    code, _, err = run_cli(["scan", str(tmp_path / "nope"), "--out", tmp_path, "--quiet"], capsys)
    assert code == 2
    _one_line_error(err, "nope")


def test_corrupt_safetensors_names_the_file(tiny_models, tmp_path, capsys):
    repo = copy_repo(tiny_models["clean"], tmp_path / "corrupt")
    data = (repo / "model.safetensors").read_bytes()
    (repo / "model.safetensors").write_bytes(data[:8] + b"{not json" + data[17:])
    code, _, err = run_cli(["scan", repo, "--out", tmp_path / "r", "--quiet"], capsys)
    assert code == 2
    _one_line_error(err, "model.safetensors")


def test_truncated_safetensors(tiny_models, tmp_path, capsys):
    repo = copy_repo(tiny_models["clean"], tmp_path / "trunc")
    data = (repo / "model.safetensors").read_bytes()
    (repo / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(["scan", repo, "--out", tmp_path / "r", "--quiet"], capsys)
    assert code == 2
    _one_line_error(err, "model.safetensors")


class _Boom:
    """Unpickling this would create a file: the scanner must never do it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickle_repo(tmp_path, tiny_models, hub_cache, name: str, payload) -> str:
    repo = tmp_path / name
    repo.mkdir()
    shutil.copy(tiny_models["clean"] / "config.json", repo / "config.json")
    (repo / "pytorch_model.bin").write_bytes(pickle.dumps(payload))
    place_in_cache(repo, f"testorg/{name}", hub_cache)
    return f"testorg/{name}"


def test_pickle_only_repo_is_refused(tiny_models, hub_cache, tmp_path, capsys):
    repo_id = _pickle_repo(tmp_path, tiny_models, hub_cache, "pickle-only", {"weight": [1.0, 2.0]})
    code, _, _ = run_cli(["scan", repo_id, "--out", tmp_path / "r", "--format", "json", "--quiet"], capsys)
    assert code == 3
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["verdict"]["status"] == "INCOMPLETE"
    assert "MSBD-S003" in {f["rule_id"] for f in report["findings"]}


def test_malicious_pickle_is_reported_and_never_unpickled(tiny_models, hub_cache, tmp_path, capsys):
    sentinel = tmp_path / "pwned"
    repo_id = _pickle_repo(tmp_path, tiny_models, hub_cache, "pickle-evil", _Boom(str(sentinel)))
    code, _, _ = run_cli(["scan", repo_id, "--out", tmp_path / "r", "--format", "json,sarif", "--quiet"], capsys)
    assert not sentinel.exists()
    assert code == 1  # a critical finding outranks the incomplete scan
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    rules = {f["rule_id"]: f for f in report["findings"]}
    assert rules["MSBD-S002"]["severity"] == "critical"
    assert "io.open" in rules["MSBD-S002"]["evidence"]["dangerous_globals"]
    assert report["verdict"]["status"] == "INCOMPLETE"


def test_unsupported_family_is_incomplete_never_clean(tmp_path, capsys):
    repo = tmp_path / "bert"
    write_json(repo / "config.json", {"architectures": ["BertForMaskedLM"], "model_type": "bert"})
    code, stdout, _ = run_cli(["scan", repo, "--out", tmp_path / "r", "--format", "json,html"], capsys)
    assert code == 3
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["verdict"]["status"] == "INCOMPLETE" and report["family"]["name"] == "unsupported"
    assert "clean" not in stdout.lower().split("incomplete")[0]


def test_custom_code_is_never_enabled(tiny_models, tmp_path, capsys):
    repo = copy_repo(tiny_models["clean"], tmp_path / "remote")
    cfg = json.loads((repo / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    write_json(repo / "config.json", cfg)
    code, _, _ = run_cli(["scan", repo, "--out", tmp_path / "r", "--format", "json", "--quiet"], capsys)
    assert code == 3
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "trust_remote_code" in report["verdict"]["summary"]


def test_diffusion_repo_is_recognised_but_incomplete(tmp_path, capsys):
    repo = tmp_path / "ddpm"
    write_json(repo / "model_index.json", {"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"]})
    code, _, _ = run_cli(["scan", repo, "--out", tmp_path / "r", "--format", "json", "--quiet"], capsys)
    assert code == 3
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["family"]["name"] == "diffusion"


def test_missing_clean_data(tiny_models, tmp_path, capsys):
    code, _, err = run_cli(["scan", tiny_models["clean"], "--clean-data", tmp_path / "no-such-data",
                            "--out", tmp_path / "r", "--quiet"], capsys)
    assert code == 2
    _one_line_error(err, "no-such-data")


def test_wrong_image_size(tiny_models, tmp_path, capsys):
    """A ViT whose preprocessor declares a size its position embeddings can't take."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    repo = tmp_path / "vit"
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=32, num_labels=3))
    model.save_pretrained(repo)
    write_json(repo / "preprocessor_config.json", {"size": {"height": 48, "width": 48}, "image_mean": [0.5] * 3,
                                                  "image_std": [0.5] * 3})
    code, _, err = run_cli(["scan", repo, "--out", tmp_path / "r", "--quiet"], capsys)
    assert code == 2
    _one_line_error(err, "48x48")


@pytest.mark.parametrize("args", [["scan"], ["scan", "a/b", "--format", "pdf"], ["scan", "a/b", "--budget", "huge"],
                                  ["no-such-command"], ["scan", "a/b", "--out", "-", "--format", "html"]])
def test_usage_errors_exit_4(args, capsys):
    code, _, err = run_cli(args, capsys)
    assert code == 4, err


def test_unknown_detector_is_a_usage_error(tiny_models, tmp_path, capsys):
    code, _, err = run_cli(["scan", tiny_models["clean"], "--detectors", "nope", "--out", tmp_path], capsys)
    assert code == 4 and "nope" in err


def test_threads_option_sets_torch_threads_for_the_command(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        code, _, err = run_cli(["--threads", "1", "scan", "nobody/does-not-exist", "--out", tmp_path, "--quiet"],
                               capsys)
        assert code == 2 and torch.get_num_threads() == 1
        code, _, err = run_cli(["--threads", "0", "scan", "nobody/does-not-exist"], capsys)
        assert code == 4 and "--threads" in err
    finally:
        torch.set_num_threads(before)


def test_model_with_nan_outputs_is_incomplete_and_runs_no_detector(tiny_models, clean_npz, tmp_path, capsys):
    """A negative BatchNorm running variance (what DARE-sampled merges left before the merge floored it) makes every
    logit NaN: the scan says so and reads nothing, rather than report triggers inverted through NaN."""
    from safetensors.torch import load_file, save_file

    repo = copy_repo(tiny_models["clean"], tmp_path / "nan")
    state = load_file(repo / "model.safetensors")
    name = next(k for k in state if k.endswith("running_var"))
    state[name] = -state[name]
    save_file(state, repo / "model.safetensors", metadata={"format": "pt"})
    for clean in ([], ["--clean-data", clean_npz]):
        out = tmp_path / f"r{len(clean)}"
        code, _, _ = run_cli(["scan", repo, *clean, "--out", out, "--budget", "fast", "--quiet"], capsys)
        assert code == 3
        report = json.loads((out / "report.json").read_text())
        assert report["verdict"]["status"] == "INCOMPLETE"
        (broken,) = [f for f in report["findings"] if f["rule_id"] == "MSBD-F002"]
        assert "NaN or infinite" in broken["message"] and ("held-out clean" in broken["message"]) == bool(clean)
        ran = {f["detector"] for f in report["findings"] if f["status"] in ("passed", "failed")}
        assert ran <= {"safety", "verdict"}, ran


def test_network_failure_is_a_one_line_error(tmp_path):
    """Online, an unreachable hub (here a closed local port) is exit 2 with one line naming the model,
    not the HTTP client's traceback. A subprocess: this process imported the hub library offline."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "modelscan_bd.cli", "scan", "nobody/unreachable", "--out",
                          str(tmp_path / "r"), "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    _one_line_error(run.stderr, "nobody/unreachable")
