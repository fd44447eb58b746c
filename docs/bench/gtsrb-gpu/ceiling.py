"""Why all-to-all BadNets stops near 0.86 attack success on GTSRB (GPU zoos s900 and s902):
`python ceiling.py ZOO_S900 ZOO_S902 > ceiling.txt`.

Per model: attack success (y -> y+1) on the test images the model classifies right without the
trigger and on the others, and the share of misses that keep the true label. Per source class,
averaged over the models: training images, clean accuracy and attack success. Uses each zoo's own
test subset (the build's draw) and attack.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from modelscan_bd.adapters.load_classifier import load_classifier
from modelscan_bd.data import load_dataset
from modelscan_bd.families import identify
from modelscan_bd.sources import resolve
from modelscan_bd.zoo.save import load_attack

torch.set_num_threads(2)
per_class = {}  # source class -> [(clean acc, attack success)] over models
for zoo in map(Path, sys.argv[1:]):
    manifest = json.loads((zoo / "manifest.json").read_text())
    data = load_dataset("gtsrb").subset(n_train=15000, n_test=2000, seed=manifest["seed"])
    x, y = data.to_tensor(data.test_x), torch.from_numpy(data.test_y)
    train_counts = np.bincount(data.train_y, minlength=43)
    for entry in manifest["models"]:
        if entry.get("attack") != "all_to_all":
            continue
        snapshot = resolve(str(zoo / entry["path"]))
        logits = load_classifier(snapshot, identify(snapshot)).model  # [0, 1] pixels in, logits out
        attack = load_attack(zoo / entry["truth_dir"])
        with torch.no_grad():
            clean = logits(x).argmax(1)
            triggered = logits(attack.apply_trigger(x)).argmax(1)
        hit = triggered == attack.asr_target(y)
        right = clean == y
        kept = float(((triggered == y) & ~hit).sum() / (~hit).sum())
        print(f"{zoo.name}/{entry['name']}: ASR {float(hit.float().mean()):.3f}  misses kept true label {kept:.2f}  "
              f"ASR on clean-correct {float(hit[right].float().mean()):.3f}  on clean-wrong "
              f"{float(hit[~right].float().mean()):.3f}")
        for c in range(43):
            k = y == c
            per_class.setdefault(c, []).append((float(right[k].float().mean()), float(hit[k].float().mean())))

table = sorted(((c, int(train_counts[c]), np.mean([a for a, _ in v]), np.mean([s for _, s in v]))
                for c, v in per_class.items()), key=lambda row: row[3])
print("\nper source class, mean over models: class, train images, poisoned pairs (~10%), clean acc, ASR")
for c, n, acc, asr in table[:12]:
    print(f"  {c:2d} {n:5d} {0.1 * n:5.0f} {acc:.3f} {asr:.3f}")
median = np.median([n for _, n, _, _ in table])
print(f"classes below median train count: mean ASR {np.mean([r[3] for r in table if r[1] < median]):.3f}; "
      f"at or above: {np.mean([r[3] for r in table if r[1] >= median]):.3f}")
ranks = [np.argsort(np.argsort([r[i] for r in table])) for i in (1, 3)]
print("Spearman(train count, ASR):", round(float(np.corrcoef(*ranks)[0, 1]), 3))
