"""Diagnostic (s60): the planted patch's size and success through the model, and single-slot patch inversions of
its target from uniform mask starts of several densities (standard's settings, generator 0).

    python diag_init.py ZOO/models/NAME
"""
import sys
import numpy as np, torch
from PIL import Image
from modelscan_bd.inversion import Inversion, InversionSettings, Slot, PATCH, success_rate
from modelscan_bd.scan import ScanConfig, scan
torch.set_num_threads(1)
path = sys.argv[1]
zoo, name = path.split("/models/")
out = scan(path, ScanConfig(budget="standard", seed=0, detectors=["exposure-collapse"], clean_data=zoo + "/clean-data.npz"))
model, clean = out.adapter.model, out.context.clean
model.eval()
truth = zoo + "/truth/" + name
m = torch.tensor(np.asarray(Image.open(truth + "/trigger_mask.png").convert("L")), dtype=torch.float32)[None] / 255
p = torch.tensor(np.asarray(Image.open(truth + "/trigger_pattern.png").convert("RGB")), dtype=torch.float32).permute(2, 0, 1) / 255
import json
target = json.load(open(truth + "/groundtruth.json"))["target"]
x, y = clean.holdout_images, clean.holdout_labels
keep = y != target
with torch.no_grad():
    hit = (model(((1 - m) * x[keep] + m * p).clamp(0, 1)).argmax(1) == target).float().mean()
print("true mask size", float(m.mean()), "success on holdout", float(hit))
for init in (-2.0, -3.0, -4.0, -5.0):
    s = InversionSettings(steps=300, images_per_slot=16)
    g = torch.Generator().manual_seed(0)
    run = Inversion(model, clean.exposure_images, clean.exposure_labels, [Slot(target, PATCH)], s, g)
    with torch.no_grad():
        run.mask_logit.fill_(init)
    run.run(300)
    r = run.results()[0]
    corner = float(r.mask[0, 27:, 27:].sum() / r.mask.sum())
    print("init", init, "size", round(r.size, 5), "reached", r.reached, "holdout", round(success_rate(model, r, x, y), 3),
          "share of mask in the 5x5 corner", round(corner, 3))
