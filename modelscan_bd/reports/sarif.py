"""SARIF 2.1.0 output, for code-scanning CI (GitHub, GitLab, Azure DevOps).

One run; one rule per distinct ``rule_id``; one result per failed or errored finding.
Passed and skipped findings are not results: SARIF results are problems, and what was
not scanned is carried by the verdict (``runs[0].properties``) and the exit code.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

# GitHub code scanning maps these to its critical/high/medium/low buckets (>=9, >=7, >=4, >0).
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
FAILED_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def render_sarif(report: dict[str, Any]) -> dict[str, Any]:
    """Build the SARIF log (a dict) for a validated report."""
    findings = report["findings"]
    verdict = report["verdict"]
    run = {
        "tool": {"driver": {"name": "modelscan-bd", "version": report["tool"]["version"],
                            "rules": _rules(findings)}},
        "invocations": [{"executionSuccessful": verdict["status"] != "INCOMPLETE",
                         "exitCode": report["exit_code"]}],
        "results": [_result(f, report["target"]) for f in findings if f["status"] in ("failed", "errored")],
        "properties": {"status": verdict["status"], "probability": verdict["probability"],
                       "suspected_targets": verdict["suspected_targets"]},
    }
    return {"version": SARIF_VERSION, "$schema": SARIF_SCHEMA, "runs": [run]}


def render_sarif_text(report: dict[str, Any]) -> str:
    """The SARIF log as indented JSON text with a trailing newline."""
    return json.dumps(render_sarif(report), indent=2, ensure_ascii=False) + "\n"


def _rules(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One rule per rule id, described by the first finding that carries it."""
    first: dict[str, dict[str, Any]] = {}
    for finding in findings:
        first.setdefault(finding["rule_id"], finding)
    return [_rule(f) for f in first.values()]


def _rule(finding: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": finding["rule_id"],
        "name": finding["title"],
        "shortDescription": {"text": finding["title"]},
        "properties": {"security-severity": SECURITY_SEVERITY[finding["severity"]],
                       "tags": ["security", "backdoor"]},
    }


def _result(finding: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    errored = finding["status"] == "errored"
    return {
        "ruleId": finding["rule_id"],
        "level": "warning" if errored else FAILED_LEVEL[finding["severity"]],
        "message": {"text": ("detector errored: " if errored else "") + finding["message"]},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": _location(finding, target)}}}],
        "properties": {
            "score": finding["score"],
            "threshold": finding["threshold"],
            "severity": finding["severity"],
            "detector": finding["detector"],
            "detector_version": finding["detector_version"],
            "target_labels": finding["target_labels"],
        },
    }


def _location(finding: dict[str, Any], target: dict[str, Any]) -> str:
    """The finding's own file, else the weights that were scanned, else the source string.

    Percent-encoded because SARIF consumers reject URIs with spaces and the like.
    """
    weights = [f["path"] for f in target["files"] if f["format"] == "safetensors"]
    where = finding.get("location") or (weights[0] if weights else target["source"])
    return quote(where, safe="/:@")
