"""Elijah (An et al., AAAI 2024) as the in-process baseline for diffusion trigger inversion.

As published: one timestep (t = T), a fixed batch of noise, lambda = 0.5, Adam lr 0.1,
delta initialised to -U(0, 1); minimise |mean_eps eps_theta(eps + delta, T) - lambda delta|.
Detection by the uniformity of images generated from eps + delta with the model's
(DDPM) sampler, relative to clean sampling. Run on the same adapter, seed and sample
budget as our detector, so the benchmark compares methods, not machines.
"""
from __future__ import annotations

import math
import time

import torch

from .detectors.diffusion_inversion import SETTINGS, dup_share, mean_pairwise, medoid

ELIJAH_LAMBDA = 0.5
ELIJAH_LR = 0.1


def elijah(adapter, seed: int, budget: str) -> dict:
    start = time.perf_counter()
    s = SETTINGS[budget]
    g = torch.Generator().manual_seed(seed * 1_000_003 + 77)
    shape = (adapter.channels, adapter.image_size, adapter.image_size)
    T = adapter.train_steps - 1
    noise = torch.randn(2 * s.batch, *shape, generator=g)  # fixed, as in the paper
    delta = (-torch.rand(shape, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=ELIJAH_LR)
    for _ in range(s.iters):
        loss = (adapter.eps(noise + delta, T).mean(0) - ELIJAH_LAMBDA * delta).norm()
        opt.zero_grad()
        loss.backward()
        opt.step()
    delta = delta.detach()
    clean = adapter.sample(torch.randn(s.gen, *shape, generator=g), "ddpm", s.ddpm_steps, g)
    imgs = adapter.sample(torch.randn(s.gen, *shape, generator=g) + delta, "ddpm", s.ddpm_steps, g)
    target, success = medoid(imgs)
    score = math.log(max(1e-6, mean_pairwise(clean)) / max(1e-6, mean_pairwise(imgs)))
    return {"score": score, "dup_share": dup_share(imgs) - dup_share(clean), "delta": delta, "target": target,
            "inverted_success": success, "seconds": time.perf_counter() - start}
