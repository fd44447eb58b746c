"""Diagnostic: is the planted patch an optimum Neural Cleanse's objective keeps, and what do other mask
starts find? Patch slots for the given labels, the first being the true target; standard's settings.

    python docs/bench/trigger-init/diag/oracle.py ZOO MODEL 6,8,3,4 plain,oracle,corner-blob,saliency

Starts: ``plain`` (the scanner's uniform mask), ``oracle`` (the target's mask on the true patch, a white
pattern), ``corner-blob`` (the target's mask at half coverage over the 8x8 bottom-right corner),
``saliency`` (every label's mask seeded by its input saliency, as in ../study.py).
"""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from study import log_ratios, saliency  # noqa: E402

from modelscan_bd.bench import mask_iou  # noqa: E402
from modelscan_bd.cleandata import load_clean_data  # noqa: E402
from modelscan_bd.families import identify  # noqa: E402
from modelscan_bd.inversion import PATCH, Inversion, InversionSettings, Slot, success_rate  # noqa: E402
from modelscan_bd.scan import FAMILY_SCANNERS  # noqa: E402
from modelscan_bd.sources import resolve  # noqa: E402

torch.set_num_threads(2)
zoo, name, labels = sys.argv[1], sys.argv[2], [int(v) for v in sys.argv[3].split(",")]
snap = resolve(f"{zoo}/models/{name}", lambda m: None)
adapter = FAMILY_SCANNERS["classifier"][0](snap, identify(snap))
clean = load_clean_data(f"{zoo}/clean-data.npz", adapter, budget=500, seed=0)
tp = Path(f"{zoo}/truth/{name}/trigger_mask.png")
tm = np.array(Image.open(tp)).astype(float) / 255 if tp.exists() else np.zeros((32, 32))
tm = tm[..., 0] if tm.ndim == 3 else tm
slots = [Slot(t, PATCH) for t in labels]
sal = {t: saliency(adapter.model, clean.exposure_images, clean.exposure_labels, t) for t in labels}
print("saliency top-k IoU of the target", mask_iou(sal[labels[0]][None], tm))
settings = InversionSettings(steps=300, images_per_slot=16)
for init in sys.argv[4].split(","):
    run = Inversion(adapter.model, clean.exposure_images, clean.exposure_labels, slots, settings,
                    torch.Generator().manual_seed(20))
    with torch.no_grad():
        if init == "oracle":
            run.mask_logit[0] = torch.where(torch.tensor(tm)[None] > 0.5, 3.0, -6.0)
            run.pattern_logit[0] = 3.0
        elif init == "saliency":
            for i, t in enumerate(labels):
                run.mask_logit[i] = -4.0 + 5.0 * sal[t][None]
        elif init == "corner-blob":
            run.mask_logit[0, :, 24:, 24:] = 0.0
    run.run(settings.steps)
    out = run.results()
    sizes = [t.effective_size() for t in out]
    ratios = log_ratios(sizes)
    held = success_rate(adapter.model, out[0], clean.holdout_images, clean.holdout_labels)
    print(f"{name} {init:11s}: target size {sizes[0]:.4f} (others {' '.join(f'{s:.4f}' for s in sizes[1:])}) "
          f"log ratio {ratios[0]:.2f} max all {max(ratios):.2f} held-out {held:.2f} "
          f"IoU {mask_iou(out[0].mask, tm)}", flush=True)
