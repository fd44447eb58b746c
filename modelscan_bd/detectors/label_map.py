"""All-to-all backdoors: where an untargeted trigger sends each class (its label map).

All-to-all BadNets (Gu, Dolan-Gavitt & Garg, 2017, §4) trains one patch to send every label y
to its own destination (y + 1 mod C here). Neural Cleanse's targeted inversion does not see it
(no label is easier to reach than the others), and on GTSRB the size of the untargeted trigger
did not separate it either (docs/bench/gtsrb-gpu/NOTES.md). What separates is the *map* that an
untargeted trigger draws. Untargeted patches are inverted from several random starts, with the
success bar at 0.9 (an all-to-all trigger at 86-88 % attack success never flips 98 % of a batch);
then, on held-out clean images that the model classifies right and a trigger flips:

* ``n_dest``: the effective number of destinations, exp(entropy of the destination labels);
* ``purity``: the share of flips that land on their source class's commonest destination.

A clean model's adversarial patch sends images to a few natural sink labels, an all-to-one
trigger to one label; an all-to-all trigger to many distinct destinations, each source class
consistently to its own (43-class GTSRB: true triggers n_dest 27-31 at purity 0.94-0.98). The
statistic, ``spread``, is n_dest x purity: the effective number of distinct, consistent
destinations. At ``standard`` the starts run 300 steps together and the one with the largest spread
then goes on alone to 600 and is scored (v4); at ``thorough`` all run 600 and the largest is scored.
On 38 clean 43-class GTSRB models it was 2.2-5.6; the cut at 6 was fixed before two held-out zoos,
where it caught 5 of 6 all-to-all models and 0 of 6 clean; on four later CPU zoos v4 catches 14 of 16
and 0 of 17 clean (docs/bench/label-map/NOTES.md, "v4").

With few classes the statistic is capped by the class count (at most 10 on CIFAR-10) and no clean
reference exists below 20 classes, so there the detector says it does not apply and spends nothing.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import torch

from ..findings import Finding
from ..inversion import PATCH, UNTARGETED, Inversion, Inverted, Slot
from .base import Detector, ScanContext
from .trigger import SETTINGS as TRIGGER_SETTINGS
from .trigger import trigger_artifacts

SUCCESS = 0.9
# Not at ``fast``: at its 150 steps the mask, which starts at 12 % of the image, rarely shrinks onto a
# small all-to-all patch before the steps run out (a tiny 20-class test model: 12.5 % patch, spread 4.1
# at 150 steps; 3.7 %, spread 18.2 at 300).
STARTS = {"standard": 3, "thorough": 5}
# 600 steps at `standard` too (v3): at 300, starts that had found an all-to-all trigger were often left
# part-way (spreads 4.8-10.4 going on to 10.6-23.4), while clean models' sinks are reached early
# (docs/bench/label-map/NOTES.md, "v3").
STEPS = {"standard": 600, "thorough": 600}
# v4 at `standard`: the starts run together for 300 steps, then only the one with the largest spread goes
# on to 600 and is scored. On every model that v3 flagged in four zoos the leader at 300 also ended past
# the cut, and the step costs 0.75-0.80 of v3's (docs/bench/label-map/NOTES.md, "v4"). None: all run to the end.
LEAD_AFTER: dict[str, int | None] = {"standard": 300, "thorough": None}
# Used when the calibration has no ``label_map`` block: the cut fixed before the held-out zoos.
DEFAULT_SPREAD, DEFAULT_MIN_CLASSES = 6.0, 20
SALT = 60  # its own generator stream: the other detectors' draws, and so their features, do not move


def thresholds(cal: dict) -> tuple[float, int]:
    """(spread, class count from which the test applies), from the calibration's ``label_map`` block."""
    return float(cal.get("spread_threshold", DEFAULT_SPREAD)), int(cal.get("min_classes", DEFAULT_MIN_CLASSES))


def map_statistics(sources: torch.Tensor, destinations: torch.Tensor) -> dict[str, float]:
    """n_dest, purity and spread (= n_dest x purity) of the flips ``sources[i] -> destinations[i]``."""
    if len(destinations) == 0:
        return {"n_dest": 0.0, "purity": 0.0, "spread": 0.0, "n_src": 0}
    counts = Counter(destinations.tolist())
    n = len(destinations)
    entropy = -sum(c / n * math.log(c / n) for c in counts.values())
    by_source: dict[int, Counter] = {}
    for s, d in zip(sources.tolist(), destinations.tolist()):
        by_source.setdefault(s, Counter())[d] += 1
    purity = sum(c.most_common(1)[0][1] for c in by_source.values()) / n
    return {"n_dest": math.exp(entropy), "purity": purity, "spread": math.exp(entropy) * purity,
            "n_src": len(by_source)}


def scored_start(inverted: list[Inverted], maps: list[dict]) -> int:
    """The start whose map is scored: the largest spread. (Scoring the smallest trigger of 6 starts
    instead tied on a held-out zoo at more cost: docs/bench/label-map/NOTES.md, "v2".)"""
    return max(range(len(maps)), key=lambda i: maps[i]["spread"])


def run_starts(model, images, labels, x, y, starts: int, settings, lead_after: int | None, generator):
    """The untargeted starts (inverted on ``images``), their maps on ``x``/``y``, the one scored and
    each start's step count. With ``lead_after``, only the start leading at that step goes on to
    ``settings.steps`` and it is scored; the others are reported as they were then."""
    run = Inversion(model, images, labels, [Slot(UNTARGETED, PATCH)] * starts, settings, generator)
    run.run(lead_after or settings.steps)
    inverted = run.results()
    maps = [label_map(model, t, x, y) for t in inverted]
    best_i = scored_start(inverted, maps)
    if lead_after:
        run.keep([best_i])
        run.run(settings.steps - lead_after)
        inverted = run.results()
        maps[best_i] = label_map(model, inverted[best_i], x, y)
    return inverted, maps, best_i, run.steps_run


@torch.no_grad()
def label_map(model, trig: Inverted, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """The map ``trig`` draws on ``images`` (which the model classifies right): flip rate, its
    statistics, and the commonest source -> destination pairs."""
    pred = model(trig.apply(images)).argmax(1)
    flip = pred != labels
    src, dst = labels[flip], pred[flip]
    pairs = Counter(zip(src.tolist(), dst.tolist())).most_common()
    return {"flip_rate": float(flip.float().mean()) if len(flip) else 0.0, **map_statistics(src, dst),
            "pairs": [[s, d, c] for (s, d), c in pairs]}


class LabelMapDetector(Detector):
    id = "label-map"
    version = "3"
    rule_id = "MSBD-C006"
    title = "All-to-all label map of an untargeted trigger"
    families = ("classifier",)
    needs_clean_data = True
    cost = "medium"
    order = 22
    budgets = tuple(STARTS)

    def run(self, target, context: ScanContext) -> list[Finding]:
        cal = context.results.get("calibration", {}).get("label_map", {})
        cut, min_classes = thresholds(cal)
        if target.num_classes < min_classes:
            why = (f"Not applied: the label-map test needs at least {min_classes} classes (this model has "
                   f"{target.num_classes}); with fewer, an untargeted trigger has few labels to map onto and no "
                   "clean reference exists.")
            return [self.finding("passed", "info", why, evidence={"applied": False, "num_classes": target.num_classes,
                                                                  "min_classes": min_classes})]
        clean = context.clean
        if clean is None or len(clean.exposure_idx) < 4:
            return [self.skipped("needs at least 4 clean images to invert on")]
        model = target.model
        with torch.no_grad():
            right = model(clean.holdout_images).argmax(1) == clean.holdout_labels
        x, y = clean.holdout_images[right], clean.holdout_labels[right]
        if len(y) < 4:
            return [self.skipped(f"only {len(y)} held-out clean images are classified right; the map needs 4")]
        settings = replace(TRIGGER_SETTINGS[context.budget][0], success=SUCCESS, steps=STEPS[context.budget])
        starts, lead = STARTS[context.budget], LEAD_AFTER[context.budget]
        context.progress(f"label map: {starts} untargeted triggers"
                         + (f", the leader at {lead} steps on to {settings.steps}" if lead else ""))
        inverted, maps, best_i, steps_run = run_starts(model, clean.exposure_images, clean.exposure_labels, x, y,
                                                       starts, settings, lead, context.generator(salt=SALT))
        best, trig = maps[best_i], inverted[best_i]
        flagged = best["spread"] >= cut
        # the best map in full and its mask: the benchmark scores them against an all-to-all truth
        context.results[self.id] = {"spread": best["spread"], "n_dest": best["n_dest"], "purity": best["purity"],
                                    "flip_rate": best["flip_rate"], "size": trig.effective_size(), "flagged": flagged,
                                    "pairs": best["pairs"], "images": int(len(y)), "patch_mask": trig.mask}
        evidence = {"applied": True, "spread_threshold": cut, "min_classes": min_classes, "best_start": best_i,
                    "holdout_images": int(len(y)), "steps": settings.steps, "success_bar": SUCCESS,
                    "starts": [{**{k: round(v, 4) if isinstance(v, float) else v for k, v in m.items() if k != "pairs"},
                                "top_pairs": m["pairs"][:10], "size": round(t.effective_size(), 5),
                                "reached": t.reached, "steps": n}
                               for m, t, n in zip(maps, inverted, steps_run)]}
        desc = (f"the leading one of {starts} untargeted triggers ({trig.effective_size():.1%} of the image) "
                f"flips {best['flip_rate']:.0%} of held-out clean images onto {best['n_dest']:.1f} effective "
                f"destination labels, {best['purity']:.0%} of them on their source class's commonest one "
                f"(spread {best['spread']:.1f}, cut {cut:g})")
        artifacts = trigger_artifacts(target, trig, x[0])  # x: held-out images the model gets right
        if flagged:
            return [self.finding("failed", "medium", f"All-to-all label map: {desc}: each class has its own "
                                 "destination, as an all-to-all backdoor trains.", score=best["spread"], threshold=cut,
                                 evidence=evidence, artifacts=artifacts)]
        return [self.finding("passed", "info", f"No all-to-all label map: {desc}.", score=best["spread"],
                             threshold=cut, evidence=evidence, artifacts=artifacts)]

