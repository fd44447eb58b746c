"""A short plain-text summary for the terminal (the full story is in the JSON/HTML).

An INCOMPLETE scan is never worded as a pass: *not scanned* and *nothing found* are
different answers (modelscan's "No issues found" after skipping every file is the
failure this avoids).
"""
from __future__ import annotations

from typing import Any

from ..findings import STATUSES, severity_rank

_SHOWN_STATUSES = ("failed", "errored", "skipped")
_MAX_FINDING_LINES = 6
_MAX_MESSAGE = 100


def render_console(report: dict[str, Any]) -> str:
    """Return the summary as lines of plain text, ending with a newline."""
    verdict = report["verdict"]
    lines = [_verdict_line(verdict)]
    if verdict["summary"]:
        lines.append(f"  {_short(verdict['summary'])}")
    lines.append(_target_line(report["target"]))
    lines.append(_family_line(report["family"]))
    lines.extend(_finding_lines(report["findings"]))
    if verdict["incomplete_reasons"]:
        lines.append("incomplete: " + "; ".join(verdict["incomplete_reasons"]))
    return "\n".join(lines) + "\n"


def _verdict_line(verdict: dict[str, Any]) -> str:
    status = verdict["status"]
    prob = "n/a" if verdict["probability"] is None else f"{verdict['probability']:.2f}"
    line = f"verdict: {status} (p={prob})"
    targets = verdict["suspected_targets"]
    if targets:
        noun = "target" if len(targets) == 1 else "targets"
        line += f", suspected {noun} " + ", ".join(f"{t['label']} ({t['name']})" for t in targets)
    if status == "INCOMPLETE":
        line += " - not everything was scanned; this is not a pass"
    return line


def _target_line(target: dict[str, Any]) -> str:
    line = f"target: {target['source']} ({target['kind']})"
    if target.get("sha"):
        line += f" sha {target['sha'][:12]}"
    return line


def _family_line(family: dict[str, Any]) -> str:
    parts = [f"family: {family['name']}"]
    if family.get("architecture"):
        parts.append(family["architecture"])
    if family.get("num_classes"):
        parts.append(f"{family['num_classes']} classes")
    return ", ".join(parts)


def _finding_lines(findings: list[dict[str, Any]]) -> list[str]:
    """A count line, then one line per failed/errored/skipped finding, most important first."""
    counts = [f"{n} {s}" for s in STATUSES if (n := sum(f["status"] == s for f in findings))]
    order = {s: i for i, s in enumerate(_SHOWN_STATUSES)}
    shown = sorted((f for f in findings if f["status"] in order),
                   key=lambda f: (order[f["status"]], -severity_rank(f["severity"])))
    lines = [f"findings: {', '.join(counts) or 'none'}"]
    lines += [f"  {f['status'].upper():<8} {f['severity']:<8} {f['detector']}: {_short(f['message'])}"
             for f in shown[:_MAX_FINDING_LINES]]
    if len(shown) > _MAX_FINDING_LINES:
        lines.append(f"  ... and {len(shown) - _MAX_FINDING_LINES} more (see the full report)")
    return lines


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."
