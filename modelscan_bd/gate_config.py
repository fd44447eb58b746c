"""Read, validate and write mergekit merge configs (the gate's input and ``--emit-config``).

mergekit itself is not a dependency: it pulls in accelerate, peft, datasets, pydantic and
more, is LGPL-3.0, and its architecture registry is written for language models, so we
parse its documented YAML format (``yaml.safe_load``: no object construction) and reject
what we cannot simulate faithfully rather than guess:

    models:
      - model: org/candidate-a          # hub id, org/name@revision, or a local folder
        parameters: {weight: 0.5, density: 0.5}
      - model: org/candidate-b
        parameters: {weight: 0.5, density: 0.5}
    base_model: org/base
    merge_method: ties                  # task_arithmetic | ties | dare_ties | dare_linear
    parameters: {normalize: true, lambda: 1.0}   # shared; may also give weight/density defaults
    dtype: float32

Errors: a malformed config is a usage error (exit 4); a well-formed config using
features the gate does not simulate (``slices``, per-tensor parameter gradients or
filters, other merge methods) is unsupported (exit 3), never a pass.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import EXIT_INCOMPLETE, ScanError, UsageError
from .merging import METHODS, MergeSpec

SHARED_KEYS = {"normalize", "rescale", "lambda", "int8_mask", "weight", "density"}
MODEL_KEYS = {"weight", "density"}
TOP_KEYS = {"models", "base_model", "merge_method", "parameters", "dtype", "tokenizer_source", "tokenizer",
            "chat_template", "out_dtype", "name", "slices"}


class UnsupportedConfigError(ScanError):
    """A valid mergekit config that the gate cannot simulate: incomplete, never a pass."""

    exit_code = EXIT_INCOMPLETE


@dataclass
class GateConfig:
    """Base, candidates and the merge they go into."""

    base: str
    candidates: list[str]
    spec: MergeSpec
    raw: dict[str, Any] = field(default_factory=dict)  # the mergekit config as read (or as built)
    source: str = "command line"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "base_model": self.base, "candidates": list(self.candidates),
                "merge_method": self.spec.method, "weights": list(self.spec.weights),
                "densities": list(self.spec.densities), "normalize": self.spec.normalize,
                "rescale": self.spec.rescale, "lambda": self.spec.lam}


def _scalar(value: Any, key: str, where: str, kind=float) -> Any:
    if isinstance(value, (list, dict)):
        raise UnsupportedConfigError(f"{where}: parameter {key!r} is a gradient or filtered list; the gate "
                                     "simulates scalar parameters only")
    if kind is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: parameter {key!r} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{where}: parameter {key!r} must be a number, got {value!r}")
    return float(value)


def parse_config(data: Any, source: str = "config") -> GateConfig:
    """Validate a loaded mergekit config and turn it into a ``GateConfig``."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a mergekit config is a YAML mapping with models, base_model and merge_method")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise UsageError(f"{source}: unknown key(s) {', '.join(unknown)}")
    if "slices" in data:
        raise UnsupportedConfigError(f"{source}: 'slices' configs (layer ranges) are not simulated by the gate")
    method = data.get("merge_method")
    if not isinstance(method, str):
        raise UsageError(f"{source}: merge_method is missing")
    if method not in METHODS:
        raise UnsupportedConfigError(f"{source}: merge_method {method!r} is not simulated by the gate "
                                     f"(supported: {', '.join(METHODS)})")
    base = data.get("base_model")
    if not isinstance(base, str) or not base.strip():
        raise UsageError(f"{source}: base_model is missing ({method} merges task vectors relative to a base)")
    shared = data.get("parameters") or {}
    if not isinstance(shared, dict):
        raise UsageError(f"{source}: parameters must be a mapping")
    bad = sorted(set(shared) - SHARED_KEYS)
    if bad:
        raise UsageError(f"{source}: unknown parameter(s) {', '.join(bad)} for {method}")
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise UsageError(f"{source}: models must be a non-empty list of {{model: ..., parameters: ...}}")
    candidates, weights, densities = [], [], []
    for i, entry in enumerate(models):
        where = f"{source}: models[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str) or not entry["model"].strip():
            raise UsageError(f"{where} needs a 'model' (hub id or folder)")
        name = entry["model"].strip()
        if name == base.strip():
            continue  # mergekit allows listing the base among the models; it is not a candidate
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise UsageError(f"{where}: parameters must be a mapping")
        bad = sorted(set(params) - MODEL_KEYS)
        if bad:
            raise UsageError(f"{where}: unknown parameter(s) {', '.join(bad)}")
        weight = params.get("weight", shared.get("weight"))
        if weight is None:
            raise UsageError(f"{where} ({name}): parameters.weight is required by {method}")
        density = params.get("density", shared.get("density", 1.0))
        density = _scalar(density, "density", where)
        if not 0 < density <= 1:
            raise UsageError(f"{where} ({name}): density must be in (0, 1], got {density}")
        candidates.append(name)
        weights.append(_scalar(weight, "weight", where))
        densities.append(density)
    if not candidates:
        raise UsageError(f"{source}: no candidate models besides the base")
    if len(set(candidates)) != len(candidates):
        raise UsageError(f"{source}: a model is listed twice")
    spec = MergeSpec(method, weights, densities,
                     normalize=_scalar(shared["normalize"], "normalize", source, bool) if "normalize" in shared else None,
                     rescale=_scalar(shared["rescale"], "rescale", source, bool) if "rescale" in shared else None,
                     lam=_scalar(shared.get("lambda", 1.0), "lambda", source))
    return GateConfig(base=base.strip(), candidates=candidates, spec=spec, raw=copy.deepcopy(data), source=source)


def load_config(path: str | Path) -> GateConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read merge config {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"merge config {p} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"merge config {p} is not valid YAML{where}") from None
    return parse_config(data, str(p))


def explicit_config(base: str, candidates: list[str], method: str, weight: float | None = None,
                    density: float = 1.0) -> GateConfig:
    """``--base B --candidate A ...``: equal weights (1/N unless given), one density."""
    n = len(candidates)
    w = weight if weight is not None else 1.0 / n
    params = {"weight": w} if method == "task_arithmetic" else {"weight": w, "density": density}
    raw = {"models": [{"model": c, "parameters": dict(params)} for c in candidates], "base_model": base,
           "merge_method": method}
    return parse_config(raw, "command line")


def emit_config(config: GateConfig, blocked: list[str]) -> dict[str, Any]:
    """The config as read, without the blocked candidates (everything else kept as is)."""
    out = copy.deepcopy(config.raw)
    out["models"] = [m for m in out.get("models", []) if not (isinstance(m, dict) and m.get("model") in blocked)]
    return out


def dump_config(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False)
