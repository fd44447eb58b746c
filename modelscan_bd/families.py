"""Family: which adapter a model needs, decided from its JSON configs alone.

No weights are read and no model code is imported here, so an unknown or hostile repo
is classified without running anything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CorruptFileError
from .sources import Snapshot


@dataclass
class Family:
    name: str  # classifier | clip | diffusion | text-to-image | unsupported
    reason: str
    library: str | None = None  # transformers | timm | open_clip | diffusers
    config: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"corrupt JSON file {path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"corrupt JSON file {path.name}: expected an object")
    return data


def identify(snapshot: Snapshot) -> Family:
    """Decide the family, in the order the design gives."""
    if snapshot.file("model_index.json"):
        cfg = read_json(snapshot.file("model_index.json"))
        if "text_encoder" in cfg or "StableDiffusion" in str(cfg.get("_class_name", "")):
            return Family("text-to-image", f"model_index.json names text-to-image pipeline "
                          f"{cfg.get('_class_name', '?')}", "diffusers", cfg, "model_index.json")
        return Family("diffusion", f"model_index.json names pipeline {cfg.get('_class_name', '?')}",
                      "diffusers", cfg, "model_index.json")
    if snapshot.file("open_clip_config.json"):
        return Family("clip", "open_clip_config.json present", "open_clip",
                      read_json(snapshot.file("open_clip_config.json")), "open_clip_config.json")
    path = snapshot.file("config.json")
    if path is None:
        return Family("unsupported", "no config.json, model_index.json or open_clip_config.json found")
    cfg = read_json(path)
    if cfg.get("auto_map") or cfg.get("trust_remote_code"):
        return Family("unsupported", "config.json asks for custom code (auto_map); modelscan-bd never enables "
                      "trust_remote_code", None, cfg, "config.json")
    if cfg.get("model_type") == "clip":
        return Family("clip", "config.json model_type is clip", "transformers", cfg, "config.json")
    archs = [a for a in cfg.get("architectures") or [] if isinstance(a, str)]
    if any(a.endswith("ForImageClassification") for a in archs):
        return Family("classifier", f"transformers architecture {archs[0]}", "transformers", cfg, "config.json")
    if isinstance(cfg.get("architecture"), str) and "num_classes" in cfg:
        return Family("classifier", f"timm architecture {cfg['architecture']}", "timm", cfg, "config.json")
    kind = ", ".join(archs) or cfg.get("model_type") or "unknown"
    return Family("unsupported", f"config.json describes {kind}, which is not an image classifier, CLIP or "
                  "diffusion model", None, cfg, "config.json")
