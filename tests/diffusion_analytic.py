"""Closed-form eps-predictors for tests: the exact (Bayes-optimal) noise prediction of a
DDPM trained to perfection on a few fixed images, optionally with a BadDiffusion-style
poisoned component. No training, so detector tests run in seconds and know the truth."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from modelscan_bd.adapters.diffusion import DiffusionAdapter
from modelscan_bd.zoo.diffusion import ddpm_scheduler, schedule


class AnalyticEps(torch.nn.Module):
    """eps*(x_t, t) = sum_i w_i(x_t) * target_i(x_t): posterior-weighted targets over mixture components.

    Clean components: x_t = s x_i + sigma eps, target eps. Poisoned component (prior
    ``poison``): x_t = s y + k r + gamma sigma eps, target gamma eps + lambda_t r (lambda = rho_sde
    or rho_ode; gamma = 1 for BadDiffusion, < 1 for the zoo's TrojDiff-style noise-scale trigger).
    """

    def __init__(self, images: torch.Tensor, trigger=None, target=None, poison: float = 0.1, mode: str = "sde",
                 gamma: float = 1.0):
        super().__init__()
        self.gamma = gamma
        sched = schedule(ddpm_scheduler().alphas_cumprod)
        self.s, self.sig, self.k = sched["s"], sched["sigma"], sched["k"]
        self.lam = sched["rho_sde" if mode == "sde" else "rho_ode"]
        self.images, self.trigger, self.target, self.poison = images, trigger, target, poison

    def forward(self, x: torch.Tensor, t: torch.Tensor):
        t = t.long()
        s, sig, k = (v[t].view(-1, 1, 1, 1) for v in (self.s, self.sig, self.k))
        means = s[:, None] * self.images[None]  # B x K x C x H x W
        logp = -((x[:, None] - means) ** 2).flatten(2).sum(2) / (2 * sig.view(-1, 1) ** 2)
        logp = logp + torch.log(torch.tensor((1 - self.poison) / len(self.images)))
        targets = (x[:, None] - means) / sig[:, None]
        if self.trigger is not None:
            pm, g = s * self.target + k * self.trigger, self.gamma
            d = x[0].numel()  # the narrower Gaussian's normaliser: -d log gamma
            lp = (-((x - pm) ** 2).flatten(1).sum(1) / (2 * (g * sig.view(-1)) ** 2) - d * torch.log(torch.tensor(g))
                  + torch.log(torch.tensor(self.poison)))
            logp = torch.cat([logp, lp[:, None]], 1)
            pt = (x - pm) / sig + self.lam[t].view(-1, 1, 1, 1) * self.trigger
            targets = torch.cat([targets, pt[:, None]], 1)
        w = torch.softmax(logp, 1)
        return SimpleNamespace(sample=(w[..., None, None, None] * targets).sum(1))

    def train(self, mode: bool = True):  # the adapter toggles eval/train; nothing to do
        return self


def analytic_adapter(images, **kw) -> DiffusionAdapter:
    cfg = dict(ddpm_scheduler().config)
    cfg["_class_name"] = "DDPMScheduler"
    return DiffusionAdapter(unet=AnalyticEps(images, **kw), scheduler_class="DDPMScheduler", scheduler_config=cfg,
                            alphas_cumprod=ddpm_scheduler().alphas_cumprod.float(), image_size=images.shape[-1],
                            channels=images.shape[1])
