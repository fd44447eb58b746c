"""Every label's trigger size for each candidate of a merging zoo, inverted against the base exactly as
gate.differential_trigger does (budget fast, seed 0), so that other scores than its log ratio to the median label
can be compared (e.g. Neural Cleanse's MAD-based anomaly index). Usage: candidate-label-sizes.py ZOO RUN"""
import json
import math
import statistics
import sys
from pathlib import Path

import torch
from zoo_probe import ZooProbe

from modelscan_bd.detectors.trigger import SETTINGS
from modelscan_bd.inversion import BLEND, PATCH, Slot, invert


def scores(sizes: dict[int, float]) -> dict[str, float]:
    """For the smallest label: log ratio to the other labels' median, and the MAD-based anomaly index."""
    k = min(sizes, key=sizes.get)
    logs = {j: math.log(max(v, 1e-4)) for j, v in sizes.items()}
    others = [v for j, v in logs.items() if j != k]
    med = statistics.median(others)
    mad = statistics.median([abs(v - med) for v in others])
    return {"label": k, "log_ratio": round(med - logs[k], 3),
            "anomaly_index": round((med - logs[k]) / (1.4826 * mad), 3)}


z = ZooProbe(Path(sys.argv[1]), Path(sys.argv[2]))
settings, _ = SETTINGS["fast"]
for n in sorted(z.models):
    m = z.models[n]
    slots = [Slot(k, shape) for k in range(m.num_classes) for shape in (PATCH, BLEND)]
    inv = invert(m.model, z.clean.exposure_images, z.clean.exposure_labels, slots, settings,
                 torch.Generator().manual_seed(0), reference=z.base.adapter.model)
    sizes = {s: {int(t.slot.target): round(t.effective_size(), 5) for t in inv if t.slot.shape == s}
             for s in (PATCH, BLEND)}
    tr = z.truth[n]
    print(json.dumps({"zoo": z.zoo.name, "name": n, "bd": bool(tr.get("backdoored")), "attack": tr.get("attack"),
                      "target": tr.get("target"), "sizes": sizes, "patch": scores(sizes[PATCH]),
                      "blend": scores(sizes[BLEND])}), flush=True)
