"""End to end through the CLI: tiny models in an offline hub cache, real code paths."""
from __future__ import annotations

import json


from conftest import TARGET, run_cli
from modelscan_bd.reports import validate_report


def _scan(repo: str, out, clean_npz, capsys, *extra):
    code, stdout, stderr = run_cli(["scan", repo, "--clean-data", clean_npz, "--out", out, "--budget", "fast",
                                    *extra], capsys)
    return code, stdout, stderr


def test_backdoored_model_is_flagged_with_its_target(tiny_models, clean_npz, tmp_path, capsys):
    code, stdout, stderr = _scan("testorg/tiny-badnets", tmp_path, clean_npz, capsys)
    report = json.loads((tmp_path / "report.json").read_text())
    validate_report(report)
    assert report["verdict"]["status"] == "BACKDOORED", report["verdict"]
    assert [t["label"] for t in report["verdict"]["suspected_targets"]] == [TARGET]
    assert code == 1  # verdict is high/critical, default --fail-on high
    assert report["target"]["kind"] == "hub" and len(report["target"]["sha"]) == 40
    assert any(f["path"] == "model.safetensors" and f["loaded"] for f in report["target"]["files"])
    html = (tmp_path / "report.html").read_text()
    assert "BACKDOORED" in html and html.count('src="data:image/png;base64,') >= 3 and "<svg" in html
    sarif = json.loads((tmp_path / "report.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert "BACKDOORED" in stdout


def test_clean_twin_passes_the_default_gate(tiny_models, clean_npz, tmp_path, capsys):
    """The clean twin passes the default gate and is never BACKDOORED. CLEAN is not required: on
    the synthetic gratings its class 8 (the bluest tint, a corner of colour space) has a natural
    outlier margin, MM-BD alone gives it p 0.01, and a 5 % patch sends 99 % of images there, both
    beyond every clean CIFAR-10 model the calibration was fitted on, which is what SUSPICIOUS
    (medium) means. That a typical clean model is CLEAN is tested on the shipped files
    (test_units.py::test_shipped_classifier_calibrations_judge_a_typical_clean_model_clean)."""
    code, stdout, _ = _scan("testorg/tiny-clean", tmp_path, clean_npz, capsys)
    report = json.loads((tmp_path / "report.json").read_text())
    validate_report(report)
    verdict = report["verdict"]
    assert verdict["status"] in ("CLEAN", "SUSPICIOUS") and code == 0, json.dumps(verdict)
    finding = next(f for f in report["findings"] if f["detector"] == "verdict")
    assert finding["severity"] in ("info", "medium") and finding["score"] < finding["threshold"]


def test_same_seed_same_verdict(tiny_models, clean_npz, tmp_path, capsys):
    """Same model, same config, same seed: same numbers (data-free detector, local folder)."""
    reports = []
    for i in range(2):
        out = tmp_path / str(i)
        run_cli(["scan", tiny_models["backdoored"], "--clean-data", clean_npz, "--out", out, "--budget", "fast",
                 "--detectors", "exposure-collapse,mmbd", "--quiet"], capsys)
        reports.append(json.loads((out / "report.json").read_text()))
    assert reports[0]["verdict"]["probability"] == reports[1]["verdict"]["probability"]
    assert reports[0]["exposure"]["runs"] == reports[1]["exposure"]["runs"]
    assert [f["score"] for f in reports[0]["findings"]] == [f["score"] for f in reports[1]["findings"]]


def test_without_clean_data_only_data_free_runs_and_scan_is_incomplete(tiny_models, tmp_path, capsys):
    code, stdout, _ = run_cli(["scan", "testorg/tiny-clean", "--out", tmp_path, "--budget", "fast", "--format",
                               "json"], capsys)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["exposure"]["status"] == "skipped" and "clean reference data" in report["exposure"]["reason"]
    ran = {f["detector"]: f["status"] for f in report["findings"]}
    assert ran["mmbd"] in ("passed", "failed")
    assert ran["exposure-collapse"] == "skipped" and ran["trigger-recovery"] == "skipped"
    assert report["verdict"]["status"] in ("INCOMPLETE", "SUSPICIOUS", "BACKDOORED")
    if report["verdict"]["status"] == "INCOMPLETE":
        assert code == 3


def test_json_to_stdout(tiny_models, capsys):
    code, stdout, _ = run_cli(["scan", "testorg/tiny-clean", "--out", "-", "--format", "json", "--budget", "fast",
                               "--detectors", "mmbd"], capsys)
    report = json.loads(stdout)
    validate_report(report)
    assert report["exit_code"] == code


def test_report_render_rebuilds_html(tiny_models, tmp_path, capsys):
    run_cli(["scan", "testorg/tiny-clean", "--out", tmp_path, "--format", "json", "--detectors", "mmbd",
             "--budget", "fast", "--quiet"], capsys)
    code, stdout, _ = run_cli(["report", "render", tmp_path / "report.json"], capsys)
    assert code == 0
    html = (tmp_path / "report.html").read_text()
    assert "modelscan-bd" in html and "<html" in html.lower()


def test_revision_pins_commit_sha(tiny_models, hub_cache, tmp_path, capsys):
    from modelscan_bd.hubcache import commit_sha_for

    sha = commit_sha_for(tiny_models["clean"])
    code, stdout, _ = run_cli(["scan", f"hf://testorg/tiny-clean@{sha}", "--out", "-", "--format", "json",
                               "--detectors", "mmbd", "--budget", "fast"], capsys)
    report = json.loads(stdout)
    assert report["target"]["sha"] == sha and report["target"]["revision"] == sha


def test_a_vit_asked_for_standard_runs_fast_through_the_shipped_fallback(tmp_path, capsys):
    """The shipped standard calibration sends transformers ViTs to fast (docs/bench/cifar10-vit, plan 3):
    a real ViT repo scanned from the CLI at the default budget runs fast and says so; --no-budget-fallback
    runs standard. Data-free (MM-BD only), so it takes seconds."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    repo = tmp_path / "vit"
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=32, num_labels=3))
    model.save_pretrained(repo)
    reports = {}
    for flag in ([], ["--no-budget-fallback"]):
        out = tmp_path / ("r" + "".join(flag))
        code, _, err = run_cli(["scan", repo, "--detectors", "mmbd", "--format", "json", "--out", out, "--quiet",
                                *flag], capsys)
        assert code in (0, 1, 3), err
        reports[bool(flag)] = json.loads((out / "report.json").read_text())
        validate_report(reports[bool(flag)])
    moved, kept = reports[False], reports[True]
    assert moved["family"]["architecture"] == "ViTForImageClassification"
    assert moved["config"]["budget"] == "fast" and moved["config"]["budget_fallback"]["requested"] == "standard"
    assert moved["verdict"]["calibration"]["budget"] == "fast"
    assert "Scanned at budget fast" in moved["verdict"]["summary"]
    assert kept["config"]["budget"] == "standard" and "budget_fallback" not in kept["config"]
