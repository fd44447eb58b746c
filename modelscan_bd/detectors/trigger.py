"""Trigger recovery for the candidate target labels, validated on the original model.

Neural Cleanse (Wang et al., IEEE S&P 2019) inverts a trigger for every label and flags
an outlier by the median absolute deviation; its cost grows with the class count and
its statistic is unstable with few labels. Here exposure (EBYD) and the data-free MM-BD
test have already named candidate labels, so we invert only for them and for a fixed
number of reference labels drawn at random: the statistic is, per label, the ratio of
the other inverted labels' median trigger size to its own (log scale), for a per-pixel
patch mask and for a whole-image blend (Blended-style invisible triggers), plus an
untargeted patch for all-to-all backdoors.
A trigger counts only if it works on held-out clean images through the *original*
model, so a trigger that merely fits the optimisation batch does not.

One inversion start can settle on a natural feature of the image (a patch the model
already reads as some class) instead of the planted trigger; at ``standard`` and
``thorough``, when the first start finds nothing, a second start from another generator
runs and each (label, shape) keeps the smaller of its two triggers (the minimum over
restarts, the usual remedy for a non-convex search).

Candidates can miss the target (label-consistent backdoors often leave exposure and MM-BD on
other labels), so at ``standard`` and ``thorough``, up to 10 classes, every label not inverted
yet gets a patch trigger too (a sweep, NC's own search over the rest): if the smallest patch of
all is a swept label's, Neural Cleanse's anomaly index over all labels exceeds 2 and that trigger
passes the detector's own bar against the labels already scored, the label joins them (patch
shape only). A swept label short of the bar changes nothing: letting in the smallest of ten
labels whatever its size raised clean models' statistic beyond what the verdict was fitted on
(docs/bench/trigger-sweep/PLAN-v5.md).

Inversion runs on the original model, not the exposed copy: a collapsed model already
sends every input to the target, so Neural Cleanse's objective degenerates there.
"""
from __future__ import annotations

import math
from statistics import median

import torch

from ..findings import Artifact, Finding
from ..inversion import (BLEND, PATCH, UNTARGETED, Inverted, InversionSettings, Slot, anomaly_index, invert,
                         success_rate)
from .base import Detector, ScanContext

SETTINGS = {
    "fast": (InversionSettings(steps=150, images_per_slot=12), 2),
    "standard": (InversionSettings(steps=300, images_per_slot=16), 2),
    "thorough": (InversionSettings(steps=600, images_per_slot=24), 4),
}
# Budgets that run a second inversion start when the first finds no trigger
# (docs/bench/trigger-starts/PROTOCOL.md); fast stays one start, as its calibration was fit.
SECOND_START = {"standard", "thorough"}
# Budgets and class counts at which the labels left out are swept (above 10 classes the sweep
# would cost more than the rest of the scan; no many-class zoo holds label-consistent models).
SWEEP = {"standard", "thorough"}
SWEEP_MAX_CLASSES = 10
SWEEP_INDEX = 2.0  # Neural Cleanse's anomaly-index cut


# Beyond this many classes, exposure's mass spreads over several labels and the vote winner and
# runner-up can miss the target (GTSRB): the two labels with the most mean post-exposure share
# are inverted as well. Up to 10 classes the candidates stay as they were calibrated.
SHARE_CANDIDATES_ABOVE = 10
SHARE_CANDIDATES = 2


def thresholds(cal: dict) -> tuple[float, float]:
    """(log ratio, held-out success) a recovered trigger must reach, from the calibration's
    ``trigger`` block."""
    return float(cal.get("log_ratio_threshold", math.log(2.5))), float(cal.get("holdout_success_threshold", 0.8))


def trigger_found(log_ratio: float | None, holdout_success: float | None, cal: dict) -> bool:
    """Whether a recovered trigger counts (the detector's failed finding)."""
    thr_ratio, thr_success = thresholds(cal)
    return (log_ratio or 0.0) >= thr_ratio and (holdout_success or 0.0) >= thr_success


def _log_ratio(reference: list[float], candidate: float) -> float:
    return math.log(max(median(reference), 1e-4) / max(candidate, 1e-4)) if reference else 0.0


class TriggerRecoveryDetector(Detector):
    id = "trigger-recovery"
    version = "5"
    rule_id = "MSBD-C002"
    title = "Trigger recovery for the candidate target (Neural Cleanse, candidate-restricted)"
    families = ("classifier",)
    needs_clean_data = True
    cost = "medium"
    order = 20

    def run(self, target, context: ScanContext) -> list[Finding]:
        clean = context.clean
        if clean is None or len(clean.exposure_idx) < 4 or len(clean.holdout_idx) < 4:
            return [self.skipped("needs at least 8 clean images (none or too few given)")]
        candidates = self._candidates(context, target.num_classes)
        if not candidates:
            return [self.skipped("no candidate label: exposure and the data-free test both unavailable")]
        settings, n_refs = SETTINGS[context.budget]
        g = context.generator(salt=20)
        others = [k for k in range(target.num_classes) if k not in candidates]
        refs = [others[i] for i in torch.randperm(len(others), generator=g)[:n_refs].tolist()]
        labels = candidates + refs
        slots = [Slot(t, shape) for t in labels for shape in (PATCH, BLEND)] + [Slot(UNTARGETED, PATCH)]
        context.progress(f"trigger inversion: {len(slots)} triggers for labels {labels}")
        cal = context.results.get("calibration", {}).get("trigger", {})
        inverted = self._invert_start(target, clean, slots, settings, g)
        sweep = None
        if context.budget in SWEEP and target.num_classes <= SWEEP_MAX_CLASSES:
            sweep, swept_trigger = self._sweep(target, clean, inverted, labels, settings,
                                               context.generator(salt=22), cal)
            if swept_trigger is not None:
                context.progress(f"trigger inversion: swept label {sweep['promoted']} stands out, scored too")
                labels = labels + [sweep["promoted"]]
                slots = slots + [swept_trigger.slot]
                inverted = inverted + [swept_trigger]
        by, ratios, best_key = self._score(inverted, labels)
        first_sizes = None
        if context.budget in SECOND_START and not trigger_found(ratios[best_key], by[best_key].holdout_success, cal):
            context.progress("trigger inversion: no trigger at the first start, second start")
            second = self._invert_start(target, clean, slots, settings, context.generator(salt=21))
            first_sizes = [round(t.effective_size(), 5) for t in inverted]
            inverted = [b if b.effective_size() < a.effective_size() else a for a, b in zip(inverted, second)]
            by, ratios, best_key = self._score(inverted, labels)
        starts = 1 if first_sizes is None else 2
        best = by[best_key]
        untargeted = by[(UNTARGETED, PATCH)]
        untargeted_ratio = _log_ratio([by[(k, PATCH)].effective_size() for k in labels], untargeted.effective_size())
        thr_ratio, _ = thresholds(cal)
        score = ratios[best_key]
        flagged = trigger_found(score, best.holdout_success, cal)
        context.results[self.id] = {
            "label": best_key[0], "shape": best_key[1], "log_ratio": score,
            "holdout_success": best.holdout_success, "size": best.effective_size(),
            "untargeted_log_ratio": untargeted_ratio, "untargeted_holdout_success": untargeted.holdout_success,
            "mask": best.mask, "pattern": best.pattern,
            "patch_mask": by[(best_key[0], PATCH)].mask,  # for localisation metrics, whatever shape won
            "flagged": flagged, "starts": starts, "promoted": sweep["promoted"] if sweep else None,
        }
        evidence = {"candidates": candidates, "references": refs,
                    "best": {"label": best_key[0], "shape": best_key[1], "log_ratio": round(score, 4)},
                    "log_ratios": {f"{k[0]}/{k[1]}": round(v, 4) for k, v in ratios.items()},
                    "untargeted_log_ratio": round(untargeted_ratio, 4),
                    "triggers": [t.summary() for t in inverted],
                    "steps": settings.steps, "images_per_slot": settings.images_per_slot,
                    "starts": starts}
        if first_sizes is not None:
            evidence["first_start_sizes"] = first_sizes
        if sweep is not None:
            evidence["sweep"] = sweep
        artifacts = self._artifacts(target, best, clean)
        name = target.labels[best_key[0]]
        desc = (f"a {best_key[1]} trigger covering {best.effective_size():.1%} of the image sends "
                f"{best.holdout_success:.0%} of held-out clean images to label {best_key[0]} ({name}) through the "
                f"original model; the other inverted labels need {math.exp(score):.1f}x more")
        if flagged:
            return [self.finding("failed", "medium", f"Recovered trigger: {desc}.", score=score, threshold=thr_ratio,
                                 evidence=evidence, artifacts=artifacts, target_labels=[best_key[0]])]
        return [self.finding("passed", "info", f"No trigger stands out: {desc}.", score=score, threshold=thr_ratio,
                             evidence=evidence, artifacts=artifacts)]

    @staticmethod
    def _invert_start(target, clean, slots, settings, g) -> list[Inverted]:
        """One inversion start: a trigger per slot, each with its held-out success."""
        inverted = invert(target.model, clean.exposure_images, clean.exposure_labels, slots, settings, g)
        for trig in inverted:
            trig.holdout_success = success_rate(target.model, trig, clean.holdout_images, clean.holdout_labels)
        return inverted

    @staticmethod
    def _sweep(target, clean, inverted: list[Inverted], labels: list[int], settings, g,
               cal: dict) -> tuple[dict, Inverted | None]:
        """A patch trigger for every label not inverted yet, and Neural Cleanse's anomaly index over
        all labels' patch sizes; the smallest label is promoted if it is a swept one, stands out, and
        its trigger would count by itself (log ratio against the scored labels' patches, held-out success).
        Returns the sweep's evidence and the promoted label's trigger (or None)."""
        swept = [k for k in range(target.num_classes) if k not in labels]
        out = {"labels": swept, "promoted": None}
        if not swept:
            return out, None
        triggers = invert(target.model, clean.exposure_images, clean.exposure_labels,
                          [Slot(k, PATCH) for k in swept], settings, g)
        sizes = {t.slot.target: t.effective_size() for t in inverted if t.slot.shape == PATCH and t.slot.target >= 0}
        sizes.update({k: t.effective_size() for k, t in zip(swept, triggers)})
        order = sorted(sizes)
        index, smallest = anomaly_index([sizes[k] for k in order])
        out.update({"sizes": {k: round(sizes[k], 5) for k in order}, "anomaly_index": round(index, 4),
                    "smallest": order[smallest]})
        if order[smallest] in swept and index > SWEEP_INDEX:
            trig = triggers[swept.index(order[smallest])]
            trig.holdout_success = success_rate(target.model, trig, clean.holdout_images, clean.holdout_labels)
            ratio = _log_ratio([sizes[k] for k in labels], trig.effective_size())
            out.update({"log_ratio": round(ratio, 4), "holdout_success": round(trig.holdout_success, 4)})
            if trigger_found(ratio, trig.holdout_success, cal):
                out["promoted"] = order[smallest]
                return out, trig
        return out, None

    @staticmethod
    def _score(inverted: list[Inverted], labels: list[int]) -> tuple[dict, dict, tuple[int, str]]:
        """The triggers by (label, shape); per (label, shape) the log of the other inverted
        labels' median size over its own; and the (label, shape) whose trigger stands out most
        and works on held-out images. Every inverted label is scored against the others, so a
        backdoor target drawn as a reference is still found (references are random, candidates can miss)."""
        by = {(t.slot.target, t.slot.shape): t for t in inverted}
        ratios = {}
        for label in labels:
            for shape in (PATCH, BLEND):
                if (label, shape) not in by:  # a swept label has a patch trigger only
                    continue
                others = [by[(o, shape)].effective_size() for o in labels if o != label and (o, shape) in by]
                ratios[(label, shape)] = _log_ratio(others, by[(label, shape)].effective_size())
        best = max(ratios, key=lambda k: (ratios[k] * (by[k].holdout_success or 0.0), ratios[k]))
        return by, ratios, best

    @staticmethod
    def _candidates(context: ScanContext, num_classes: int) -> list[int]:
        """Exposure's collapse label and runner-up, and the data-free test's suspect; beyond
        ``SHARE_CANDIDATES_ABOVE`` classes also exposure's labels with the most mean share."""
        collapse = context.results.get("exposure-collapse") or {}
        mmbd = context.results.get("mmbd") or {}
        found = [collapse.get("label"), collapse.get("runner_up"), mmbd.get("target")]
        if num_classes > SHARE_CANDIDATES_ABOVE:
            found += (collapse.get("by_share") or [])[:SHARE_CANDIDATES]
        return list(dict.fromkeys(int(c) for c in found if c is not None))

    @staticmethod
    def _artifacts(target, trig, clean) -> list[Artifact]:
        eligible = torch.nonzero(clean.holdout_labels != trig.slot.target).flatten()
        return trigger_artifacts(target, trig, clean.holdout_images[eligible[0] if len(eligible) else 0])


def trigger_artifacts(target, trig: Inverted, example: torch.Tensor) -> list[Artifact]:
    """Pictures of an inverted trigger: its mask, pattern and painted part, and ``example`` (a
    held-out clean image) before and after the trigger, with the model's predictions."""
    applied = trig.apply(example[None])[0]
    before, after = (target.labels[int(target.predict(v[None])[0])] for v in (example, applied))
    shown_mask = trig.mask.expand(3, -1, -1) if example.shape[0] == 3 else trig.mask
    return [
        Artifact.from_array("mask", f"recovered mask ({trig.slot.shape}, {trig.effective_size():.1%} of the image)",
                            shown_mask),
        Artifact.from_array("pattern", "recovered pattern", trig.pattern),
        Artifact.from_array("trigger", "mask x pattern: what is painted onto an image", trig.mask * trig.pattern),
        Artifact.from_array("clean", f"held-out clean image (predicted {before})", example),
        Artifact.from_array("triggered", f"same image with the trigger (predicted {after})", applied),
    ]
