"""The zero-shot classifier view of a CLIP model, through the classifier pipeline.

A CLIP model plus text prompts over a label set (CIFAR-10's classes by default, or the
user's ``--labels``) is an image classifier: logits are scaled cosine similarities to the
labels' prompt embeddings. A data-poisoning backdoor that ties a trigger to a caption
(Carlini & Terzis) or an encoder backdoor aimed at a concept (BadEncoder) then behaves
like an all-to-one classifier backdoor whose target is the label nearest that concept.
So the expose-then-detect pipeline applies unchanged: Clean Unlearning (EBYD) on the
zero-shot cross-entropy collapses the exposed image tower onto the target concept, and
candidate-restricted trigger recovery (Neural Cleanse) validates a trigger for it on
held-out images through the original model; the concept DECREE's encoder trigger
collapses onto joins the candidates. These two detectors are the classifier
ones run on ``ClipAdapter.zero_shot()``; their findings name the target text.
"""
from __future__ import annotations

from ..findings import Finding
from .base import ScanContext
from .collapse import ExposureCollapseDetector
from .trigger import TriggerRecoveryDetector


class ZeroShotCollapseDetector(ExposureCollapseDetector):
    id = "clip-collapse"
    version = "1"
    rule_id = "MSBD-E002"
    title = "Target concept from exposure collapse of the zero-shot classifier (EBYD)"
    families = ("clip",)
    order = 70

    def run(self, target, context: ScanContext) -> list[Finding]:
        findings = super().run(target.zero_shot(), context)
        return [_with_text(f, target) for f in findings]


class ZeroShotTriggerDetector(TriggerRecoveryDetector):
    id = "clip-trigger"
    version = "1"
    rule_id = "MSBD-E003"
    title = "Trigger recovery for the candidate concept through the zero-shot classifier"
    families = ("clip",)
    order = 80

    def run(self, target, context: ScanContext) -> list[Finding]:
        clean = context.clean
        if clean is not None and len(clean.exposure_labels.unique()) < 2:
            # A zero-shot classifier that gives every clean image one label (a degenerate
            # model, or data of one class) leaves no images to move to the other labels.
            return [self.skipped("the clean images' labels hold a single class; trigger recovery needs two or more")]
        findings = super().run(target.zero_shot(), context)
        return [_with_text(f, target) for f in findings]

    @staticmethod
    def _candidates(context: ScanContext, num_classes: int) -> list[int]:
        """The collapse label and runner-up and DECREE's label, whatever the concept count: the
        CLIP calibration was fitted on these (the classifier's share candidates are not used)."""
        collapse = context.results.get("clip-collapse") or {}
        decree = context.results.get("decree") or {}
        found = [collapse.get("label"), collapse.get("runner_up"), decree.get("label")]
        return list(dict.fromkeys(int(c) for c in found if c is not None))


def _with_text(finding: Finding, target) -> Finding:
    """Name the target concept as text, and the prompts that make up its class embedding."""
    if finding.target_labels:
        label = target.labels[finding.target_labels[0]]
        finding.evidence = {**finding.evidence, "target_text": label, "target_prompts": target.prompts_for(label)}
    return finding
