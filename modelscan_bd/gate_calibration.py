"""The merging calibration: the verdict combiner for the gate's weight-space variants and
simulated merges (``calibration/merging.json``).

The classifier calibration was fitted on models trained directly on a task; amplified task
vectors (theta_0 + lambda tau) and merges are off that distribution (measured: a clean
fine-tune's amplified variant scored p = 0.61 and a merge carrying a BadMerging backdoor,
ASR 1.0, scored p = 0.23 under it; docs/bench/merging). So the gate re-fits the same
logistic combiner (``verdict.fit_logistic``) on such models from a fitting zoo, over the
features of its lean variant detector set (exposure collapse and trigger recovery; MM-BD
is not run on variants). A row's label is the truth of *that* model: whether the backdoor
of the candidate it carries works there (attack success >= 0.5 on clean images), so a
diluted backdoor in a merge, or a BadMerging candidate amplified alone (suppressed), is a
negative. Rows whose clean accuracy fell below half the base's are left out: the gate gives
such broken models no weight. The BACKDOORED threshold keeps the fitting rows' false
positive rate at or below 5 % (as ``bench.calibrate`` does).

``modelscan-bd bench MERGING_ZOO --calibrate --calibration-out F`` runs the gate benchmark on
a fitting zoo, takes its rows (``gate_bench.fit_rows``: labels from the attack success the
benchmark measures) and writes the fitted file.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .errors import UsageError
from .verdict import Calibration, fit_calibration, load_calibration, probability

MERGING_FEATURES = ("collapse_concentration", "collapse_agreement", "trigger_log_ratio", "trigger_holdout_success",
                    "untargeted_log_ratio")
ASR_POSITIVE = 0.5


def fit_merging_calibration(rows: list[dict[str, Any]], description: str, max_fpr: float = 0.05) -> Calibration:
    """rows: {"features": {...}, "asr": float | None} (None: no backdoor in the model)."""
    # Both are the user's fitting set (a zoo, --fit-rows), not a bug: one-line usage errors, exit 4.
    if not rows:
        raise UsageError("no rows to fit the merging calibration on")
    feats = [r["features"] for r in rows]
    labels = [int((r.get("asr") or 0.0) >= ASR_POSITIVE) for r in rows]
    if len(set(labels)) < 2:
        raise UsageError("the fitting rows need both backdoored and clean models: add a zoo of the other kind "
                         "with --fit-rows")
    cal = fit_calibration(feats, labels, MERGING_FEATURES, version="merging", description=description,
                          detectors=load_calibration().detectors, max_fpr=max_fpr, max_threshold=0.95)
    fitted = [cal.mean, cal.scale, cal.weights, cal.bias]
    cal.version = f"merging-{hashlib.sha256(json.dumps(fitted, sort_keys=True).encode()).hexdigest()[:8]}"
    return cal


def fitting_summary(rows: list[dict[str, Any]], cal: Calibration) -> dict[str, Any]:
    """How the calibration separates its own fitting rows (for the record, not for reporting)."""
    probs = [probability(r["features"], cal)[0] for r in rows]
    labels = [int((r.get("asr") or 0.0) >= ASR_POSITIVE) for r in rows]
    pos = [p for p, y in zip(probs, labels) if y]
    neg = [p for p, y in zip(probs, labels) if not y]
    return {"rows": len(rows), "positives": len(pos), "negatives": len(neg),
            "tpr": round(sum(p >= cal.backdoored_threshold for p in pos) / max(1, len(pos)), 4),
            "fpr": round(sum(p >= cal.backdoored_threshold for p in neg) / max(1, len(neg)), 4)}
