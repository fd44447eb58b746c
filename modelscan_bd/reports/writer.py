"""Write a report in the requested formats: validated once, each file written atomically."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .html import render_html
from .json_report import render_json, validate_report
from .sarif import render_sarif_text

RENDERERS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "json": (".json", render_json),
    "html": (".html", render_html),
    "sarif": (".sarif", render_sarif_text),
}
STDOUT = "-"


def write_reports(report: dict[str, Any], out: str | Path, formats: list[str],
                  basename: str = "report") -> dict[str, str]:
    """Write ``<basename>.<ext>`` into folder ``out`` for each format; return {format: path}.

    ``out == "-"`` prints the JSON report to stdout (the only format allowed there) and
    maps it to ``"-"``. Raises ``ValueError`` for unknown formats and
    ``jsonschema.ValidationError`` for an invalid report, before anything is written.
    """
    unknown = sorted(set(formats) - RENDERERS.keys())
    if unknown:
        raise ValueError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(RENDERERS)}")
    if str(out) == STDOUT and set(formats) != {"json"}:
        raise ValueError("stdout ('-') takes exactly one format: json")
    validate_report(report)
    if str(out) == STDOUT:
        sys.stdout.write(render_json(report))
        sys.stdout.flush()
        return {"json": STDOUT}
    # Render everything first so a renderer failure leaves no half-updated set of files.
    texts = {fmt: RENDERERS[fmt][1](report) for fmt in dict.fromkeys(formats)}
    folder = Path(out)
    return {fmt: str(atomic_write_text(folder / f"{basename}{RENDERERS[fmt][0]}", text))
            for fmt, text in texts.items()}
