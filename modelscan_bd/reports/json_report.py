"""The JSON report: the source of truth every other format is rendered from.

Its contract is ``report.schema.json`` (JSON Schema draft 2020-12), shipped inside the
package so installed copies validate against exactly the schema they were built with.
"""
from __future__ import annotations

import copy
import functools
import json
import os
from importlib import resources
from typing import Any

import jsonschema

from ..errors import InputError

SCHEMA_FILE = "report.schema.json"
_MAX_MESSAGE = 200  # keep InputError messages to one readable line


def load_schema() -> dict[str, Any]:
    """Return the report JSON Schema (a fresh copy: callers may not mutate the cached one)."""
    return copy.deepcopy(_schema())


def validate_report(report: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` (the most relevant error) if ``report`` breaks the schema."""
    _validator().validate(report)


def render_json(report: dict[str, Any]) -> str:
    """Serialise a report: indented, key order kept, UTF-8 text, strict JSON (no NaN)."""
    return json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a JSON report; any problem becomes a one-line ``InputError``."""
    try:
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    except OSError as exc:
        raise InputError(f"cannot read report {os.fspath(path)}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{os.fspath(path)} is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{os.fspath(path)} is not UTF-8 text: {exc.reason}") from exc
    try:
        validate_report(report)
    except jsonschema.ValidationError as exc:
        raise InputError(f"{os.fspath(path)} is not a valid modelscan-bd report: "
                         f"{_one_line(exc.message)} (at {exc.json_path})") from exc
    return report


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _one_line(text: str) -> str:
    """jsonschema messages embed the offending value's repr, which can be huge or multi-line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"
