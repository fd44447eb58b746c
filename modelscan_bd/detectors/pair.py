"""Source-specific backdoors: a patch trigger for every (source, target) label pair.

A source-specific backdoor fires on one class only: the attack also trains triggered images of the
other classes under their own labels (the cover set of Tang et al., "Demon in the Variant", USENIX
Security 2021). So the universal triggers of Neural Cleanse and of trigger recovery, optimised on images
of every class, do not find it. K-Arm (Shen et al., ICML 2021) makes every (source, target) pair an arm
of the search. Here, after it but without its bandit schedule (ten classes give 90 pairs, optimised in
one batch):

1. *screen*: every pair's patch trigger is inverted for a few steps on the exposure images of its
   source that the model classifies right;
2. *refine*: the ``TOP`` smallest are inverted again from scratch, longer and on more images per step;
3. *score* each refined pair and keep the largest score.

A clean model has a crowd of natural easy pairs (deer -> bird, cat -> dog) of similar size, and its
refined pairs are not much smaller than that crowd; a planted pair stands below it. A pair's
``crowd_gap`` is log(the ``CROWD``-th smallest screened pair / its refined size): a relative size, so
models whose pairs are all easy or all hard compare. A planted trigger also works on images of its source
it was not fitted on and not on the other classes (the cover set trained that), while a natural pair's
patch, fitted to a few images, carries over less. A pair's ``score`` weighs its gap by that specificity:
crowd_gap x (held-out success on the source - success on the other classes). On 36 development models
the smallest refined pair's score ranked 8 source-specific models above 28 ordinary clean ones with AUROC
0.96 (the gap alone 0.87; docs/bench/cifar10-source-specific/NOTES.md). Version 2 keeps the largest of
the ``TOP`` refined pairs' scores instead: the smallest refined pair is sometimes a natural one while the
planted pair, refined too, is a little larger and far more specific (AUROC 0.896 -> 0.959 on 83
development models, planted pair named 18/22 -> 22/22, then tested on a fresh zoo:
docs/bench/pair-noise/PLAN-largest.md, NOTES.md). It is judged against clean ten-class references in the
verdict (``verdict.REFERENCES``), like ``feature_gap``.
"""
from __future__ import annotations

import math

import torch

from ..findings import Finding
from ..inversion import PATCH, Inversion, InversionSettings, Slot
from .base import ScanContext
from .per_label import PerLabelDetector, reference_cut
from .trigger import trigger_artifacts

# Screening on 4 images a step ranked the planted pair first on all 8 development models in 13 s (on 8
# images, as the first probe did, second or third on two, at twice the cost); the refined schedule is the
# probe's (docs/bench/cifar10-source-specific/NOTES.md).
SCREEN = {"standard": InversionSettings(steps=200, images_per_slot=4, success=0.9),
          "thorough": InversionSettings(steps=300, images_per_slot=8, success=0.9)}
REFINE = {"standard": InversionSettings(steps=600, images_per_slot=16, success=0.9),
          "thorough": InversionSettings(steps=900, images_per_slot=16, success=0.9)}
TOP = 3  # pairs refined; the planted pair was among the 3 smallest screened on every development model
CROWD = 10  # the screened pair whose size stands for the crowd of natural pairs
DEFAULT_CLASSES = 10
SALT = 70  # its own generator stream: the other detectors' draws, and so their features, do not move


def thresholds(cal: dict) -> tuple[float | None, int]:
    """(score that flags, the class count the clean reference was measured on), from the calibration's
    ``pair`` block."""
    return reference_cut(cal, "score_threshold", DEFAULT_CLASSES)


def pair_found(score: float | None, cal: dict) -> bool:
    """Whether a pair trigger's score counts (the detector's failed finding)."""
    cut = thresholds(cal)[0]
    return cut is not None and score is not None and score >= cut


def pair_score(gap: float, hold: float | None, off: float | None) -> float:
    """The crowd gap weighted by how specifically the trigger works: held-out success on its source
    minus success on the other classes (0 when either was not measured or the difference is negative)."""
    if hold is None or off is None:
        return 0.0
    return gap * max(0.0, hold - off)


def pair_slots(labels: torch.Tensor, num_classes: int, min_images: int = 2) -> list[Slot]:
    """A patch slot for every (source, target) pair whose source has ``min_images`` images."""
    counts = torch.bincount(labels, minlength=num_classes)
    return [Slot(t, PATCH, source=s) for s in range(num_classes) if counts[s] >= min_images
            for t in range(num_classes) if t != s]


def crowd_gap(screened: list[float], refined: float, crowd: int = CROWD) -> float:
    """log(the ``crowd``-th smallest screened size / a refined pair's size)."""
    ranked = sorted(screened)
    return math.log(ranked[min(crowd, len(ranked)) - 1] / max(refined, 1e-6))


@torch.no_grad()
def hit_rate(model, trig, images: torch.Tensor, label: int) -> float | None:
    if len(images) == 0:
        return None
    return float((model(trig.apply(images)).argmax(1) == label).float().mean())


@torch.no_grad()
def classified_right(model, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (and labels) the model classifies right."""
    right = model(images).argmax(1) == labels
    return images[right], labels[right]


def screen_pairs(model, images: torch.Tensor, labels: torch.Tensor, slots: list[Slot], budget: str,
                 generator: torch.Generator) -> list:
    """Step 1: every slot's patch trigger, inverted in one batch on the screen schedule of ``budget``."""
    run = Inversion(model, images, labels, slots, SCREEN[budget], generator)
    run.run(SCREEN[budget].steps)
    return run.results()


def refine_pairs(model, images: torch.Tensor, labels: torch.Tensor, slots: list[Slot], screened: list[float],
                 budget: str, generator: torch.Generator) -> tuple[list[int], list]:
    """Step 2: the ``TOP`` slots of smallest screened size (their indices) and their triggers inverted again
    from scratch on the refine schedule, the generator's stream continuing the screen's."""
    top = sorted(range(len(slots)), key=screened.__getitem__)[:TOP]
    run = Inversion(model, images, labels, [slots[i] for i in top], REFINE[budget], generator)
    run.run(REFINE[budget].steps)
    return top, run.results()


class PairTriggerDetector(PerLabelDetector):
    id = "pair-trigger"
    version = "2"
    rule_id = "MSBD-C008"
    title = "Patch trigger for every (source, target) label pair (source-specific backdoors)"
    cost = "medium"
    order = 24

    def run(self, target, context: ScanContext) -> list[Finding]:
        cal = context.results.get("calibration", {}).get("pair", {})
        cut, classes = thresholds(cal)
        k = int(target.num_classes)
        if k != classes:
            why = (f"Not applied: the clean reference is of {classes}-class models (this one has {k}; "
                   f"{k * (k - 1)} pairs)")
            return [self.finding("passed", "info", why + ".", evidence={"applied": False, "num_classes": k})]
        skipped = self.too_little_clean(context)
        if skipped:
            return skipped
        model, clean = target.model, context.clean
        ex_x, ex_y = classified_right(model, clean.exposure_images, clean.exposure_labels)
        ho_x, ho_y = classified_right(model, clean.holdout_images, clean.holdout_labels)
        slots = pair_slots(ex_y, k)
        if len(slots) < CROWD:
            return [self.skipped(f"only {len(slots)} label pairs have 2 clean images of their source classified right")]
        g = context.generator(salt=SALT)
        context.progress(f"pair triggers: {len(slots)} (source, target) pairs, the {TOP} smallest refined")
        screened = [t.effective_size() for t in screen_pairs(model, ex_x, ex_y, slots, context.budget, g)]
        top, refined = refine_pairs(model, ex_x, ex_y, slots, screened, context.budget, g)
        scored = []  # (score, gap, hold, off) of each refined pair
        for r in refined:
            s, t = r.slot.source, r.slot.target
            gap = crowd_gap(screened, r.effective_size())
            hold = hit_rate(model, r, ho_x[ho_y == s], t)
            off = hit_rate(model, r, ho_x[(ho_y != s) & (ho_y != t)], t)
            scored.append((pair_score(gap, hold, off), gap, hold, off))
        # the largest score; on a tie (all 0, say) the smallest trigger, as version 1 kept
        i = max(range(len(refined)), key=lambda j: (scored[j][0], -refined[j].effective_size()))
        best, (score, gap, hold, off) = refined[i], scored[i]
        s, t = best.slot.source, best.slot.target
        flagged = pair_found(score, cal)
        each = [{"source": r.slot.source, "target": r.slot.target, "screened": round(screened[j], 5),
                 "size": round(r.effective_size(), 5), "score": round(sc, 4), "crowd_gap": round(gp, 4),
                 "holdout_success": None if ho is None else round(ho, 4),
                 "off_source_success": None if of is None else round(of, 4)}
                for j, r, (sc, gp, ho, of) in zip(top, refined, scored)]
        context.results[self.id] = {"source": s, "label": t, "score": score, "crowd_gap": gap,
                                    "size": best.effective_size(),
                                    "holdout_success": hold, "off_source_success": off, "flagged": flagged,
                                    "refined": each,
                                    "patch_mask": best.mask}  # the benchmark scores it against a source-specific truth
        evidence = {"applied": True, "source": s, "label": t, "score": round(score, 4), "score_threshold": cut,
                    "crowd_gap": round(gap, 4),
                    "size": round(best.effective_size(), 5), "holdout_success": None if hold is None else round(hold, 4),
                    "off_source_success": None if off is None else round(off, 4), "pairs": len(slots),
                    "crowd_size": round(sorted(screened)[CROWD - 1], 5), "refined": each}
        names = target.labels
        desc = (f"the highest-scoring of the {TOP} smallest pair triggers, {s} ({names[s]}) -> {t} ({names[t]}), "
                f"covers {best.effective_size():.2%} of the image, {math.exp(gap):.2f}x below the {CROWD}th smallest "
                f"of {len(slots)} pairs"
                + (f"; it sends {hold:.0%} of held-out {names[s]} images to {names[t]}" if hold is not None else "")
                + (f" and {off:.0%} of other classes' images" if off is not None else "") + f" (score {score:.2f})")
        artifacts = trigger_artifacts(target, best, (ho_x[ho_y == s] if bool((ho_y == s).any()) else ex_x[ex_y == s])[0])
        if flagged:
            return [self.finding("failed", "medium", f"Source-specific trigger: {desc}.", score=score, threshold=cut,
                                 evidence=evidence, target_labels=[t], artifacts=artifacts)]
        return [self.finding("passed", "info", f"No label pair stands out: {desc}.", score=score, threshold=cut,
                             evidence=evidence, artifacts=artifacts)]
