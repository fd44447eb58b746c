"""Is a source-specific zoo model a trigger backdoor? On GTSRB's test split (6,000 images): clean accuracy
on the source class, share of clean source images sent to the target without the trigger, attack success
(triggered source images -> target) and triggered images of other classes -> target (the cover set's
specificity).

    python docs/bench/gtsrb/source-specific/ss_check.py ZOO   # > ss_check-ZOO.txt
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from modelscan_bd.data import data_dir
from modelscan_bd.families import identify
from modelscan_bd.scan import _load_classifier
from modelscan_bd.sources import resolve
from modelscan_bd.zoo.save import load_attack

torch.set_num_threads(2)
zoo = Path(sys.argv[1])
d = np.load(data_dir() / "gtsrb.npz")
x = torch.tensor(d["test_images"]).float().div(255).permute(0, 3, 1, 2)
y = torch.tensor(d["test_labels"]).long()
man = json.loads((zoo / "manifest.json").read_text())
for e in man["models"]:
    if e.get("attack") != "source_specific":
        continue
    snap = resolve(str(zoo / e["path"]))
    a = _load_classifier(snap, identify(snap))
    atk = load_attack(zoo / e["truth_dir"])
    s, t = atk.source, atk.target
    with torch.no_grad():
        src = x[y == s]
        p_clean = torch.cat([a.model(b).argmax(1) for b in src.split(500)])
        p_trig = torch.cat([a.model(atk.apply_trigger(b)).argmax(1) for b in src.split(500)])
        other = x[(y != s) & (y != t)][:2000]
        p_other = torch.cat([a.model(atk.apply_trigger(b)).argmax(1) for b in other.split(500)])
    print(f"{e['name']}: source {s} ({len(src)} test images) target {t}: clean source acc "
          f"{float((p_clean == s).float().mean()):.2f}, clean source->target {float((p_clean == t).float().mean()):.2f}, "
          f"ASR {float((p_trig == t).float().mean()):.2f}, triggered others->target {float((p_other == t).float().mean()):.3f}")
