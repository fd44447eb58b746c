"""Report writers: JSON (the source of truth), HTML, SARIF 2.1.0 and a console summary."""
from .atomic import atomic_write_bytes, atomic_write_text
from .console import render_console
from .html import render_html
from .json_report import load_report, load_schema, render_json, validate_report
from .sarif import render_sarif, render_sarif_text
from .writer import write_reports

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "load_report",
    "load_schema",
    "render_console",
    "render_html",
    "render_json",
    "render_sarif",
    "render_sarif_text",
    "validate_report",
    "write_reports",
]
