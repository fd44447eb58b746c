"""The gate's reports: JSON (validated against ``gate.schema.json``), one-file HTML, SARIF
and a console summary, written atomically like the scan's (``write_reports``)."""
from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .atomic import atomic_write_text
from .html import _environment
from .json_report import render_json
from .sarif import render_sarif

SCHEMA_FILE = "gate.schema.json"
TEMPLATE = "gate.html.j2"
_EXT = {"json": ".json", "html": ".html", "sarif": ".sarif"}


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_gate_report(report: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if the gate report breaks its schema."""
    _validator().validate(report)


def render_gate_html(report: dict[str, Any]) -> str:
    return _environment().get_template(TEMPLATE).render(r=report)


def render_gate_sarif(report: dict[str, Any]) -> str:
    """SARIF through the scan's renderer: one result per failed gate finding, located at the
    candidate it is about (its hub id or folder)."""
    view = {"findings": report["findings"], "tool": report["tool"], "exit_code": report["exit_code"],
            "target": {"source": report["config"]["merge"]["source"], "files": []},
            "verdict": {"status": "INCOMPLETE" if report["exit_code"] == 3 else "BLOCKED"
                        if report["exit_code"] == 1 else "PASSED",
                        "probability": report["merged"]["probability"], "suspected_targets": []}}
    sarif = render_sarif(view)
    sarif["runs"][0]["properties"]["candidates"] = {c["source"]: c["verdict"] for c in report["candidates"]}
    return json.dumps(sarif, indent=2, ensure_ascii=False) + "\n"


def render_gate_console(report: dict[str, Any]) -> str:
    lines = []
    for c in report["candidates"]:
        lines.append(f"{c['verdict'].upper():5} {c['source']} (score {c['score']:.2f})")
        for reason in c["reasons"][:4]:
            lines.append(f"      - {reason[:160]}")
    m = report["merged"]
    p = "n/a" if m["probability"] is None else f"{m['probability']:.2f}"
    judged = "" if m["judged_as"] == m["method"] else f", judged on its expectation ({m['judged_as']})"
    lines.append(f"merge ({m['method']}{judged}): {m['status']} (p={p})")
    if m.get("sampled_merge"):
        lines.append(f"merge ({m['method']}, one random drop): {m['sampled_merge']['status']}")
    if m.get("safe_merge"):
        s = m["safe_merge"]
        lines.append(f"merge without {', '.join(s['without'])}: {s['status']}")
    b = report["base"]["scan"]
    lines.append(f"base {report['base']['source']}: {b['status']}")
    lines.append(f"{report['timing']['total_seconds']:.0f} s")
    return "\n".join(lines) + "\n"


def write_gate_reports(report: dict[str, Any], out: str | Path, formats: list[str]) -> dict[str, str]:
    """Validate once, render everything, then write each file atomically ('-' prints JSON)."""
    validate_gate_report(report)
    if str(out) == "-":
        import sys

        sys.stdout.write(render_json(report))
        return {"json": "-"}
    renderers = {"json": render_json, "html": render_gate_html, "sarif": render_gate_sarif}
    texts = {fmt: renderers[fmt](report) for fmt in dict.fromkeys(formats)}
    return {fmt: str(atomic_write_text(Path(out) / f"gate{_EXT[fmt]}", text)) for fmt, text in texts.items()}


def strip_for_size(report: dict[str, Any]) -> dict[str, Any]:
    """A copy without per-file listings, for logs that keep many reports."""
    out = copy.deepcopy(report)
    for c in out["candidates"]:
        c["target"]["files"] = []
    return out
