"""The unit of evidence: a Finding, produced by detectors and the safety check.

Findings are plain data and serialise to the JSON report (the source of truth); every
other report format is rendered from that JSON.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical")
STATUSES = ("passed", "failed", "skipped", "errored")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass
class Artifact:
    """A picture attached to a finding: stored as base64 PNG inside the JSON report."""

    name: str
    caption: str
    png_base64: str
    media_type: str = "image/png"

    @classmethod
    def from_array(cls, name: str, caption: str, image, scale: int = 4) -> "Artifact":
        """Build from an HxW or HxWxC array in [0, 1] (numpy or torch); upscaled for viewing."""
        import numpy as np
        from PIL import Image

        arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)  # CHW -> HWC
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        arr8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        img = Image.fromarray(arr8)
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
        return cls(name=name, caption=caption, png_base64=base64.b64encode(buf.getvalue()).decode("ascii"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "caption": self.caption, "media_type": self.media_type,
                "png_base64": self.png_base64}


@dataclass
class Finding:
    """One result of one check.

    status: passed (looked, nothing found), failed (found something), skipped (did not
    look, with a reason), errored (crashed; the message says how).
    score/threshold: the detector's statistic and the value at which it fails.
    """

    rule_id: str
    detector: str
    detector_version: str
    status: str
    severity: str
    title: str
    message: str
    score: float | None = None
    threshold: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    target_labels: list[int] = field(default_factory=list)
    location: str | None = None  # the file the finding is about, for SARIF

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown finding status {self.status!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "detector": self.detector,
            "detector_version": self.detector_version,
            "status": self.status,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "score": _finite_or_none(self.score),
            "threshold": _finite_or_none(self.threshold),
            "evidence": _jsonable(self.evidence),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "target_labels": [int(t) for t in self.target_labels],
            "location": self.location,
        }


def _finite_or_none(x: float | None) -> float | None:
    import math

    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(obj: Any) -> Any:
    """Turn numpy/torch scalars and arrays into JSON types (NaN/inf become None)."""
    import math

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return str(obj)
