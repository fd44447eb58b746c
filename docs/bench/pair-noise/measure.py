"""Development rows for a less noisy pair score: the pair-trigger step (version 1) on the real scan path (only
`pair-trigger` selected, budget standard, seed 0, the zoo's clean data), and after it, on the same screened and
refined triggers, the raw pieces the candidate statistics need:

- `screened`: every pair's screened size, sorted (other crowd definitions);
- `soft_hold`, `soft_off`: the refined best trigger's mean softmax on its target over held-out images of its
  source / of the other classes (the argmax rates `holdout_success` and `off_source_success`, on 6-25
  source images, move in steps of 4-17 %);
- `refined_rates`: each refined pair's [hold, off, soft_hold, soft_off] (added after the s2870 test, for scoring
  every refined pair rather than the smallest: NOTES.md; the committed rows predate it);
- `crowd_refined`: the screened pairs ranked CROWD-1..CROWD+1 refined by the refine schedule, on their own
  generator stream after the shipped step's draws, so the crowd's size is measured like the best's.
- `wide_rates`: each refined pair's [hold, off, source images, other images] over every held-out image (by
  its label) the model does not already send to the pair's target, not only those it classifies right
  (PLAN-wide.md; added in s67, earlier rows lack it). `SKIP_CROWD=1` skips `crowd_refined` (8-11 s a model).

The screen and refine steps are the detector's own functions (`pair.screen_pairs`, `pair.refine_pairs`). The
statistic is recomputed from the same run: `score` is pair-trigger version 1's (the smallest refined pair,
shipped until s67); version 2's, the largest refined pair's score, is `refined.py`'s "largest" from
`refined_rates` (the screened and refined triggers are the same in both versions). Dev only: the detector itself
is unchanged by this script.

    PYTHONPATH=. python docs/bench/pair-noise/measure.py OUT.jsonl ZOO [ZOO ...]   # ONLY=clean-001,...: names
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

from modelscan_bd.bench import read_manifest, read_truth
from modelscan_bd.detectors import pair
from modelscan_bd.inversion import Inversion
from modelscan_bd.scan import ScanConfig, scan

EXTRA_SALT = 71  # the crowd's refinement draws from its own stream: the shipped step's draws do not move
_row: dict = {}


@torch.no_grad()
def soft_rate(model, trig, images: torch.Tensor, label: int) -> float | None:
    if len(images) == 0:
        return None
    return float(torch.softmax(model(trig.apply(images)), 1)[:, label].mean())


def _rates(model, trig, ho_x, ho_y) -> list:
    """[hold, off, soft_hold, soft_off] of one refined pair's trigger on the held-out images."""
    s, t = trig.slot.source, trig.slot.target
    src, other = ho_x[ho_y == s], ho_x[(ho_y != s) & (ho_y != t)]
    return [pair.hit_rate(model, trig, src, t), pair.hit_rate(model, trig, other, t),
            soft_rate(model, trig, src, t), soft_rate(model, trig, other, t)]


@torch.no_grad()
def _wide_rates(model, trig, images: torch.Tensor, labels: torch.Tensor) -> list:
    """[hold, off, n_source, n_other] over every held-out image not already classified as the pair's target."""
    s, t = trig.slot.source, trig.slot.target
    not_t = model(images).argmax(1) != t
    src, other = images[not_t & (labels == s)], images[not_t & (labels != s) & (labels != t)]
    return [pair.hit_rate(model, trig, src, t), pair.hit_rate(model, trig, other, t), len(src), len(other)]


def instrumented_run(self, target, context):
    """The detector's run (pair.PairTriggerDetector.run) with its pieces kept, then the extra measurements."""
    k, model, clean = int(target.num_classes), target.model, context.clean
    ex_x, ex_y = pair.classified_right(model, clean.exposure_images, clean.exposure_labels)
    ho_x, ho_y = pair.classified_right(model, clean.holdout_images, clean.holdout_labels)
    slots = pair.pair_slots(ex_y, k)
    g = context.generator(salt=pair.SALT)
    screened = [t.effective_size() for t in pair.screen_pairs(model, ex_x, ex_y, slots, context.budget, g)]
    _, refined = pair.refine_pairs(model, ex_x, ex_y, slots, screened, context.budget, g)
    order = sorted(range(len(slots)), key=screened.__getitem__)
    rates = [_rates(model, r, ho_x, ho_y) for r in refined]  # every refined pair's, the best's among them
    i = min(range(len(refined)), key=lambda j: refined[j].effective_size())
    best, (hold, off, soft_hold, soft_off) = refined[i], rates[i]
    s, t = best.slot.source, best.slot.target
    gap = pair.crowd_gap(screened, best.effective_size())
    wide = [_wide_rates(model, r, clean.holdout_images, clean.holdout_labels) for r in refined]
    t0 = time.perf_counter()
    crowd_idx = order[pair.CROWD - 2:pair.CROWD + 1]
    crowd = None
    if not os.environ.get("SKIP_CROWD"):
        refine = pair.REFINE[context.budget]
        crowd = Inversion(model, ex_x, ex_y, [slots[i] for i in crowd_idx], refine, context.generator(salt=EXTRA_SALT))
        crowd.run(refine.steps)
    _row.update({"source": s, "label": t, "size": best.effective_size(), "crowd_gap": gap,
                 "holdout_success": hold, "off_source_success": off, "score": pair.pair_score(gap, hold, off),
                 "n_source_holdout": int((ho_y == s).sum()), "soft_hold": soft_hold, "soft_off": soft_off,
                 "screened": sorted(screened),
                 "crowd_refined": None if crowd is None else [r.effective_size() for r in crowd.results()],
                 "crowd_pairs": [[slots[i].source, slots[i].target] for i in crowd_idx],
                 "refined_top": [[r.slot.source, r.slot.target, r.effective_size()] for r in refined],
                 "refined_rates": rates, "wide_rates": wide,
                 "extra_seconds": round(time.perf_counter() - t0, 2)})
    return []


def main(out: str, zoos: list[str]) -> None:
    torch.set_num_threads(2)
    pair.PairTriggerDetector.run = instrumented_run
    only = [w for w in os.environ.get("ONLY", "").split(",") if w]
    for zoo in map(Path, zoos):
        for entry in read_manifest(zoo)["models"]:
            if only and not any(w in entry["name"] for w in only):
                continue
            truth = read_truth(zoo, entry)
            _row.clear()
            t = time.perf_counter()
            scan(str(zoo / entry["path"]), ScanConfig(budget="standard", seed=0, detectors=["pair-trigger"],
                                                      clean_data=str(zoo / "clean-data.npz")))
            row = {"zoo": zoo.name, "name": entry["name"], "attack": truth.get("attack") or "clean",
                   "hard": bool(entry.get("hard") or truth.get("hard")), "target": truth.get("target"),
                   "true_source": (truth.get("params") or {}).get("source"), **_row,
                   "seconds": round(time.perf_counter() - t, 2)}
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: v for k, v in row.items() if k not in ("screened",)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
