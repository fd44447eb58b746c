"""Diagnostic: is the planted corner patch an optimum NC's objective keeps (oracle init), and what
does a plain start find? Patch slots for the scan's labels; the first label is the true target."""
import sys, math
from pathlib import Path
import numpy as np, torch
from PIL import Image
from modelscan_bd.sources import resolve
from modelscan_bd.families import identify
from modelscan_bd.scan import FAMILY_SCANNERS
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.inversion import Inversion, Slot, PATCH, InversionSettings, success_rate
from modelscan_bd.bench import mask_iou
torch.set_num_threads(2)
zoo, name, labels = sys.argv[1], sys.argv[2], [int(v) for v in sys.argv[3].split(',')]
snap = resolve(f"{zoo}/models/{name}", lambda m: None)
adapter = FAMILY_SCANNERS["classifier"][0](snap, identify(snap))
clean = load_clean_data(f"{zoo}/clean-data.npz", adapter, budget=500, seed=0)
tp = Path(f"{zoo}/truth/{name}/trigger_mask.png")
tm = np.array(Image.open(tp)).astype(float) / 255 if tp.exists() else np.zeros((32, 32))
tm = tm[..., 0] if tm.ndim == 3 else tm
slots = [Slot(t, PATCH) for t in labels]
import torch.nn.functional as F

def saliency(label):
    x, y = clean.exposure_images, clean.exposure_labels
    x = x[y != label][:64].clone().requires_grad_(True)
    loss = F.cross_entropy(adapter.model(x), torch.full((len(x),), label))
    g, = torch.autograd.grad(loss, x)
    sal = g.abs().sum(1).mean(0)
    return sal / sal.max()

SAL = {t: saliency(t) for t in labels}
print('saliency top-9 iou of the target', mask_iou(SAL[labels[0]][None], tm))
for init in sys.argv[4].split(","):
    for bar in (0.98,):
        st = InversionSettings(steps=300, images_per_slot=16, success=bar)
        run = Inversion(adapter.model, clean.exposure_images, clean.exposure_labels, slots, st, torch.Generator().manual_seed(20))
        with torch.no_grad():
            if init == "oracle":
                run.mask_logit[0] = torch.where(torch.tensor(tm)[None] > 0.5, 3.0, -6.0)
                run.pattern_logit[0] = 3.0
            elif init.startswith("saliency"):
                for i, t in enumerate(labels):
                    run.mask_logit[i] = -4.0 + 5.0 * SAL[t][None]
            elif init == "corner-blob":  # a bigger 8x8 region at the corner, pattern random
                blob = torch.full((1, 32, 32), -2.0); blob[:, 24:, 24:] = 0.0
                run.mask_logit[0] = blob
        run.run(300)
        out = run.results()
        sizes = [t.effective_size() for t in out]
        r0 = math.log(np.median(sizes[1:]) / sizes[0])
        hs = success_rate(adapter.model, out[0], clean.holdout_images, clean.holdout_labels)
        print(f"{name} {init:11s} bar {bar}: target size {sizes[0]:.4f} (others {' '.join(f'{s:.4f}' for s in sizes[1:])}) "
              f"log ratio {r0:.2f} max all {max(math.log(np.median([z for j, z in enumerate(sizes) if j != i]) / sizes[i]) for i in range(len(sizes))):.2f} holdout {hs:.2f} iou {mask_iou(out[0].mask, tm)}", flush=True)
