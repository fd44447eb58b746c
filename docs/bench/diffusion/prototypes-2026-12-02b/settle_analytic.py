import torch, sys
sys.path.insert(0, "tests")
torch.set_num_threads(1)
from diffusion_analytic import analytic_adapter
from modelscan_bd.detectors.diffusion_inversion import InversionSettings, Inverter, structured_dup
from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, trigger_image
from test_diffusion import SMALL
imgs, _ = synthetic_digits(64, seed=6)
trig, target = trigger_image("stop"), target_image("hat")
start = torch.zeros_like(trig); start[:, 9:13, 3:7] = 1.5  # a square inside the stop sign
cos = lambda a: float((a * trig).sum() / (a.norm() * trig.norm()))
settings = InversionSettings(**SMALL, scan_steps=10, settle_iters=int(sys.argv[1]))
for name, kw in (("bd", dict(trigger=trig, target=target, mode="ode")), ("clean", {})):
    for seed in range(2):
        inv = Inverter(analytic_adapter(imgs, **kw), settings, "ode", torch.Generator().manual_seed(seed))
        before = structured_dup(inv.generate(start, 16, "ddim"))
        d = inv.settle(start)
        after = structured_dup(inv.generate(d, 16, "ddim"))
        print(name, seed, round(cos(start), 2), round(cos(d), 2), before, after, flush=True)
