"""Each candidate's trigger inverted against the base (cached by the bench): its success through the candidate per
source class of the held-out clean images, and whether the gate flagged it (planted or specific) in any group.
Usage: candidate-trigger-per-class.py ZOO RUN"""
import json
import sys
from pathlib import Path

import torch
from zoo_probe import ZooProbe

z = ZooProbe(Path(sys.argv[1]), Path(sys.argv[2]))
trig = z.cached(["differential", "own"], 3)
flags = z.flagged()
x, y = z.clean.holdout_images, z.clean.holdout_labels
for n, (flag, bd, _) in sorted(flags.items()):
    t = trig.get(n)
    if not t:
        continue
    mask, pat = torch.tensor(t["_trigger"]["mask"]), torch.tensor(t["_trigger"]["pattern"])
    with torch.no_grad():
        pred = z.models[n].predict((1 - mask) * x + mask * pat)
        pclean = z.models[n].predict(x)
    per = {}
    for k in y.unique().tolist():
        if k == t["label"]:
            continue
        sel = y == k
        per[k] = round(float((pred[sel] == t["label"]).float().mean()), 2)
    print(json.dumps({"zoo": z.zoo.name, "name": n, "bd": bd, "flag": flag, "label": t["label"], "lr": t["log_ratio"],
                      "min": min(per.values()), "per": per}))
