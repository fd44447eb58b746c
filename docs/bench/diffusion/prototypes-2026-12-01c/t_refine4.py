import sys, dataclasses
sys.path.insert(0, "tests")
import torch
torch.set_num_threads(1)
from diffusion_analytic import analytic_adapter
from modelscan_bd.detectors.diffusion_inversion import InversionSettings, Inverter, structured_dup
from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, trigger_image
SMALL = dict(iters=25, batch=8, cons_batch=4, cons_steps=2, refresh=25, gen=8, ddpm_steps=40, ddim_steps=10)
imgs, _ = synthetic_digits(64, seed=6)
trig = trigger_image("box"); tgt = target_image("hat")
for cut, amp in ((13, 1.0), (13, 0.8), (12, 1.0), (14, 0.7)):
  res = []
  for seed in range(5):
    start = trig.clone(); start[..., :, cut:] = 0; start = amp * start
    st = dataclasses.replace(InversionSettings(**SMALL), scan_steps=10, scan_images=8)
    inv = Inverter(analytic_adapter(imgs, trigger=trig, target=tgt), st, "sde", torch.Generator().manual_seed(seed))
    before = inv.generate(start, 16, "ddpm")
    d = inv.refine(start, tgt, "ddpm")
    after = structured_dup(inv.generate(d, 16, "ddpm")) if d is not None else None
    res.append((round(structured_dup(before), 2), None if after is None else round(after, 2)))
  print(cut, amp, res)
