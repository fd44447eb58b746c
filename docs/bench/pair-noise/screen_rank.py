"""Where the planted pair ranks in pair-trigger's screening (development only): the detector's screen step
(`pair.screen_pairs`, on the same images and generator stream as the detector), every pair's screened size
kept with its (source, target), so a source-specific model's planted pair can be ranked. It asks whether
refining more than the 3 smallest pairs would reach the planted pair on the models where it is not refined
(NOTES.md, s2880).

    ONLY=source_specific PYTHONPATH=. python docs/bench/pair-noise/screen_rank.py OUT.jsonl ZOO [ZOO ...]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402

from modelscan_bd.detectors import pair  # noqa: E402


def screen_only(self, target, context):
    k, model, clean = int(target.num_classes), target.model, context.clean
    ex_x, ex_y = pair.classified_right(model, clean.exposure_images, clean.exposure_labels)
    slots = pair.pair_slots(ex_y, k)
    screened = pair.screen_pairs(model, ex_x, ex_y, slots, context.budget, context.generator(salt=pair.SALT))
    sized = sorted(([s.source, s.target, r.effective_size()] for s, r in zip(slots, screened)), key=lambda x: x[2])
    measure._row.update({"screened_pairs": sized})
    return []


if __name__ == "__main__":
    measure.instrumented_run = screen_only  # measure.main installs it as the detector's run
    measure.main(sys.argv[1], sys.argv[2:])
