"""Report writers: schema validation, HTML, SARIF, console, atomic writing."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from modelscan_bd.errors import InputError
from modelscan_bd.findings import Artifact, Finding
from modelscan_bd.reports import (atomic_write_text, load_report, load_schema, render_console, render_html,
                                  render_json, render_sarif, validate_report, write_reports)

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SHA = "ab" * 32


def _run(seed: int, top: int) -> dict[str, Any]:
    after = [3] * 10
    after[top] = 973
    return {"method": "clean_unlearning", "seed": seed, "lr": 0.01, "steps": 40, "steps_to_collapse": 12 + seed,
            "collapsed": True, "accuracy_path": [[s, max(0.92 - 0.07 * s, 0.1)] for s in range(0, 41, 4)],
            "histogram_before": [100, 98, 102, 99, 101, 100, 97, 103, 100, 100],
            "histogram_after": after, "top_label": top, "top_share": 0.973}


def _findings() -> list[dict[str, Any]]:
    trigger = np.zeros((8, 8, 3))
    trigger[5:8, 5:8] = 1.0
    mask = np.zeros((8, 8))
    mask[5:8, 5:8] = 1.0
    return [
        Finding("MSBD-S001", "safety", "1", "passed", "info", "No pickle-based files",
                "All weight files are safetensors; nothing needed unpickling.").to_dict(),
        Finding("MSBD-C001", "collapse", "1.0", "passed", "info", "Exposure collapse",
                "All runs collapsed onto one label.", score=0.97, threshold=0.5, target_labels=[3],
                evidence={"top_labels": [3, 3, 3]}).to_dict(),
        Finding("MSBD-NC001", "neural-cleanse", "1.2", "failed", "high", "Small trigger recovered",
                "A 9-pixel patch flips 98% of images to class 3.", score=4.2, threshold=2.0, target_labels=[3],
                evidence={"anomaly_index": 4.2, "mask_l1": [float(i) for i in range(40)],
                          "per_class": {"3": {"l1": 9.0, "asr": 0.98}}},
                artifacts=[Artifact.from_array("trigger", "Recovered trigger for class 3", trigger),
                           Artifact.from_array("mask", "Recovered mask for class 3", mask)]).to_dict(),
        Finding("MSBD-ST001", "strip", "1.0", "skipped", "info", "STRIP entropy test",
                "skipped: the thorough budget is needed.").to_dict(),
        Finding("MSBD-AC001", "activation", "0.3", "errored", "medium", "Activation clustering",
                "RuntimeError: out of memory while hooking layer4.").to_dict(),
    ]


def sample_report(**overrides: Any) -> dict[str, Any]:
    """A realistic classifier scan: BACKDOORED, provisional calibration, every finding status."""
    report = {
        "schema_version": "1.0",
        "tool": {"name": "modelscan-bd", "version": "0.1.0"},
        "created_at": "2025-01-01T12:00:00Z",
        "target": {"source": "acme/cifar-resnet@main", "kind": "hub", "repo_id": "acme/cifar-resnet",
                   "revision": "main", "sha": "0123456789abcdef0123456789abcdef01234567", "path": None,
                   "files": [{"path": "config.json", "size": 812, "sha256": SHA, "format": "json", "loaded": True},
                             {"path": "model.safetensors", "size": 44_700_000, "sha256": "cd" * 32,
                              "format": "safetensors", "loaded": True},
                             {"path": "README.md", "size": 2_000, "sha256": None, "format": "text", "loaded": False}]},
        "environment": {"python": "3.11.9", "torch": "2.14.1", "device": "cpu", "cuda": None, "threads": 8},
        "config": {"budget": "standard", "seed": 0, "fail_on": "high", "clean_data": None,
                   "detectors": ["collapse", "neural-cleanse", "strip", "activation"]},
        "family": {"name": "classifier", "reason": "config.json architectures: ResNetForImageClassification",
                   "architecture": "ResNetForImageClassification", "num_classes": 10, "labels": list(LABELS),
                   "preprocess": {"size": [3, 32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                                  "range": [0.0, 1.0], "source": "default (no preprocessor_config.json)",
                                  "defaults_used": ["mean", "std"]}},
        "verdict": {"status": "BACKDOORED", "probability": 0.93,
                    "suspected_targets": [{"label": 3, "name": "cat", "confidence": 0.9}],
                    "pattern": "all-to-one", "summary": "Exposure collapses onto class 3 and a small trigger flips it.",
                    "incomplete_reasons": [], "features": {"collapse_share": 0.973, "nc_anomaly": 4.2},
                    "calibration": {"version": "0.1", "provisional": True, "description": "Zoo of 12 models."}},
        "exposure": {"status": "done", "reason": None, "method": "clean_unlearning",
                     "runs": [_run(0, 3), _run(1, 3), _run(2, 3)]},
        "findings": _findings(),
        "timing": {"total_seconds": 42.5, "steps": {"load": 1.5, "exposure": 30.0, "detectors": 11.0},
                   "peak_memory_mb": 812.0},
        "exit_code": 1,
    }
    report.update(overrides)
    return report


def incomplete_report() -> dict[str, Any]:
    """An unsupported model: nothing was scanned, so the verdict must not read as a pass."""
    verdict = {"status": "INCOMPLETE", "probability": None, "suspected_targets": [], "pattern": "none",
               "summary": "The model family is not supported; no detector ran.",
               "incomplete_reasons": ["unsupported family: text model", "exposure skipped"], "calibration": None}
    skipped = Finding("MSBD-F001", "family", "1", "skipped", "info", "Unsupported family",
                      "BertForMaskedLM is not an image model.").to_dict()
    return sample_report(verdict=verdict, findings=[skipped], exit_code=3,
                         exposure={"status": "skipped", "reason": "unsupported family", "runs": []})


def minimal_report() -> dict[str, Any]:
    """Only what the schema requires: every renderer must cope with the optional keys absent."""
    finding = {"rule_id": "MSBD-X001", "detector": "x", "detector_version": "1", "status": "failed",
               "severity": "critical", "title": "X", "message": "m", "score": None, "threshold": None,
               "evidence": {}, "artifacts": [], "target_labels": []}
    run = {"method": "m", "seed": 0, "histogram_before": [5, 5], "histogram_after": [0, 10],
           "top_label": 1, "top_share": 1.0}
    return {"schema_version": "1.0", "tool": {"name": "modelscan-bd", "version": "0.1.0"}, "created_at": "now",
            "target": {"source": "./model dir", "kind": "local", "files": []}, "environment": {},
            "config": {"budget": "fast", "seed": 1, "fail_on": "high"},
            "family": {"name": "classifier", "reason": "r"},
            "verdict": {"status": "SUSPICIOUS", "probability": 0.5, "suspected_targets": [], "summary": "",
                        "incomplete_reasons": [], "calibration": None},
            "exposure": {"status": "done", "runs": [run]}, "findings": [finding],
            "timing": {"total_seconds": 1.0}, "exit_code": 1}


def test_minimal_report_renders_in_every_format(tmp_path: Path) -> None:
    report = minimal_report()
    paths = write_reports(report, tmp_path, ["json", "html", "sarif"])
    assert "SUSPICIOUS" in Path(paths["html"]).read_text(encoding="utf-8")
    assert render_console(report).startswith("verdict: SUSPICIOUS (p=0.50)")
    (result,) = render_sarif(report)["runs"][0]["results"]
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "./model%20dir"


# ---- JSON -------------------------------------------------------------------------

def test_sample_report_validates_and_round_trips(tmp_path: Path) -> None:
    report = sample_report()
    validate_report(report)
    path = tmp_path / "r.json"
    path.write_text(render_json(report), encoding="utf-8")
    assert load_report(path) == report
    assert load_schema()["properties"]["schema_version"]["const"] == "1.0"


@pytest.mark.parametrize("path, value", [(("verdict", "status"), "MAYBE"), (("exit_code",), 7),
                                         (("findings", 0, "rule_id"), "bad-id")])
def test_invalid_report_raises(path: tuple, value: Any) -> None:
    report = sample_report()
    node = report
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_report(report)


def test_load_report_errors_are_one_line_input_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps(sample_report(exit_code=9)), encoding="utf-8")
    for path in (broken, invalid, tmp_path / "missing.json"):
        with pytest.raises(InputError) as info:
            load_report(path)
        assert path.name in str(info.value) and "\n" not in str(info.value)


# ---- HTML -------------------------------------------------------------------------

def test_html_contents() -> None:
    report = sample_report()
    html = render_html(report)
    assert "BACKDOORED" in html and "Provisional calibration" in html
    n_artifacts = sum(len(f["artifacts"]) for f in report["findings"])
    assert n_artifacts == 2 and html.count('<img src="data:image/png;base64,') == n_artifacts
    assert html.count("<svg") == 3 * len(report["exposure"]["runs"])
    assert "Defaults were used for" in html and "mean, std" in html
    assert "out of memory" in html and "thorough budget" in html  # errored and skipped reasons
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<script" not in html.lower()


def test_html_escapes_untrusted_text() -> None:
    evil = "<script>alert(1)</script>"
    report = sample_report()
    report["family"]["labels"][3] = evil
    report["verdict"]["suspected_targets"][0]["name"] = evil
    report["findings"][2]["message"] = evil
    report["findings"][2]["evidence"]["note"] = evil
    report["target"]["files"][0]["path"] = '"><img src=x onerror=alert(1)>'
    html = render_html(report)
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_incomplete_and_skipped_exposure() -> None:
    html = render_html(incomplete_report())
    assert "v-INCOMPLETE" in html and "unsupported family" in html and "<svg" not in html


# ---- console ----------------------------------------------------------------------

def test_console_summary() -> None:
    text = render_console(sample_report())
    assert text.startswith("verdict: BACKDOORED (p=0.93), suspected target 3 (cat)")
    assert "0123456789ab" in text and "ResNetForImageClassification" in text
    assert "FAILED" in text and "ERRORED" in text and "SKIPPED" in text
    assert 5 <= len(text.splitlines()) <= 12


def test_console_never_calls_incomplete_clean() -> None:
    text = render_console(incomplete_report())
    assert "INCOMPLETE" in text and "incomplete: unsupported family" in text
    assert "clean" not in text.lower() and "no issues" not in text.lower()


# ---- SARIF ------------------------------------------------------------------------

def test_sarif() -> None:
    report = sample_report()
    sarif = render_sarif(report)
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    (run,) = sarif["runs"]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == {f["rule_id"] for f in report["findings"]}
    assert all(isinstance(r["properties"]["security-severity"], str) for r in rules.values())
    assert rules["MSBD-NC001"]["properties"]["security-severity"] == "8.0"
    results = {r["ruleId"]: r for r in run["results"]}
    assert set(results) == {"MSBD-NC001", "MSBD-AC001"}  # failed and errored only
    assert results["MSBD-NC001"]["level"] == "error"
    assert results["MSBD-AC001"]["level"] == "warning"
    assert results["MSBD-AC001"]["message"]["text"].startswith("detector errored: ")
    uri = results["MSBD-NC001"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "model.safetensors"
    assert run["properties"]["status"] == "BACKDOORED"
    assert run["invocations"] == [{"executionSuccessful": True, "exitCode": 1}]
    assert render_sarif(incomplete_report())["runs"][0]["invocations"][0]["executionSuccessful"] is False


# ---- writing ----------------------------------------------------------------------

def test_write_reports_writes_all_formats(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    paths = write_reports(sample_report(), out, ["json", "html", "sarif"], basename="scan")
    assert set(paths) == {"json", "html", "sarif"}
    assert sorted(p.name for p in out.iterdir()) == ["scan.html", "scan.json", "scan.sarif"]
    assert json.loads(Path(paths["json"]).read_text(encoding="utf-8")) == sample_report()
    assert json.loads(Path(paths["sarif"]).read_text(encoding="utf-8"))["version"] == "2.1.0"


def test_write_reports_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_reports(sample_report(), tmp_path, ["pdf"])
    with pytest.raises(ValueError):
        write_reports(sample_report(), "-", ["json", "html"])
    bad = sample_report()
    bad["verdict"]["status"] = "MAYBE"
    with pytest.raises(jsonschema.ValidationError):
        write_reports(bad, tmp_path, ["json"])
    assert list(tmp_path.iterdir()) == []


def test_write_reports_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert write_reports(sample_report(), "-", ["json"]) == {"json": "-"}
    assert json.loads(capsys.readouterr().out)["verdict"]["status"] == "BACKDOORED"


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_atomic_write_cleans_up_when_writing_fails_midway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def broken_fsync(fd: int) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        atomic_write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_write_reports_keeps_old_files_when_rendering_fails(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    report = sample_report()
    report["verdict"]["features"] = {"bad": float("nan")}  # schema-valid, but not strict JSON
    with pytest.raises(ValueError):
        write_reports(report, tmp_path, ["html", "json"])
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
