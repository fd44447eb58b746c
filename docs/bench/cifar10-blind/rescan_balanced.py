"""A copy of a CIFAR-10 zoo whose clean-data.npz is the class-stratified scan sample that the fixed
builder (ImageDataset.scan_images) draws for the same seed; models, truth and manifest are linked.

    python docs/bench/cifar10-blind/rescan_balanced.py ZOO COPY TRAIN_SIZE   # TRAIN_SIZE as built
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

from modelscan_bd.data import load_dataset

src, dst, train_size = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), int(sys.argv[3])
with open(src / 'manifest.json') as f:
    seed = json.load(f)['seed']
ds = load_dataset('cifar10').subset(n_train=train_size, n_test=2000, seed=seed)
old = np.load(src / 'clean-data.npz')
assert np.array_equal(old['images'], ds.test_x[:500]), 'the zoo was not built from this subset (seed, train size)'
dst.mkdir(parents=True)
for name in ('models', 'truth', 'manifest.json'):
    os.symlink(src / name, dst / name)
images, labels = ds.scan_images(500, seed)
np.savez_compressed(dst / 'clean-data.npz', images=images, labels=labels)
shared = len({x.tobytes() for x in images} & {x.tobytes() for x in old['images']})
print(dst, 'per class', np.bincount(labels).tolist(), 'old set', np.bincount(old['labels']).tolist(), 'shared', shared)
