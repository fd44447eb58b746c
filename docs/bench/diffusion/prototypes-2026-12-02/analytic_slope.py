import sys, torch
sys.path.insert(0, "tests")
torch.set_num_threads(1)
from diffusion_analytic import analytic_adapter
from modelscan_bd.detectors.diffusion_inversion import noise_scale_response
from modelscan_bd.zoo.diffusion import synthetic_digits, target_image, trigger_image
for n in (16, 64, 256):
    imgs, _ = synthetic_digits(n, seed=2)
    for name, kw in (("clean", {}), ("troj", dict(trigger=0.4 * trigger_image("blend"), target=target_image("hat"), gamma=0.6, mode="ode", poison=0.1)),
                     ("bad", dict(trigger=trigger_image("box"), target=target_image("hat")))):
        ad = analytic_adapter(imgs, **kw)
        g = torch.Generator().manual_seed(0)
        cent = ad.sample(torch.randn(8, 1, 16, 16, generator=g), "ddim", 10, g)
        r = noise_scale_response(ad, cent, g)
        print(n, name, round(r["slope"], 3), r["x0_var"], flush=True)
