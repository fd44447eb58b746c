"""Trigger inversion for unconditional diffusion models, after PureDiffusion.

PureDiffusion (Truong & Le, arXiv 2409.13945 and 2502.19047) generalises Elijah (An et
al., AAAI 2024) and TERD (Mo et al., ICML 2024). A trigger-backdoored DDPM maps a shifted
start x_T = eps + r to a fixed target; in training it learnt to predict eps + lambda_t r on
the poisoned trajectory, with lambda_t = rho_t for SDE (ancestral-sampler) backdoors and
about 2 rho_t for ODE (DDIM) ones. We invert a shift delta on the input noise by gradient
descent on

* a multi-timestep distribution-shift loss: on states x_t = sqrt(abar_t) y_hat +
  (1 - sqrt(abar_t)) delta + sqrt(1 - abar_t) eps of trajectories started from eps + delta
  (y_hat: the images those trajectories currently reach, refreshed during the descent),
  the mean of eps_theta(x_t, t) - eps must equal lambda_t delta at several t. Several
  timesteps matter: an ODE backdoor's response at t = T matches a clean model's and only
  separates around t = T/2;
* a denoising-consistency loss: short differentiable reverse chains started from
  different eps with the same delta must end at the same image.

Fresh noise is drawn at every step (a fixed noise batch lets any model fit it). Both
lambda families are tried (SDE with the DDPM sampler, ODE with DDIM); each starts from
the best of a gradient-free scan over patch candidates; the descent minimises the
shift loss relative to |delta|^2 and a line search on that loss picks the scale. Two
options, off by default because they measured worse (see InversionSettings): full-image
starts, and a short generation probe over larger scales (PROBE_SCALES).
Then images are generated from eps + delta* with DDPM and DDIM and compared with images
from plain eps: a backdoored model generates near-duplicates of its target. Beside the
inverted triggers, a generation scan (``generation_scan``, detector version 2) tries every
patch candidate directly by what a few images from eps + candidate look like, and the best
few per sampler are judged the same way on fresh noise: the shift loss cannot single out
every trigger (a clean model fits it as well along directions of its own), generation can.
Where the best shift per sampler already generates a few near-duplicates (a partly firing
trigger), a target-driven refinement (``Inverter.refine``, detector version 3) descends on it
so that short reverse chains end on that image, and the result is judged on fresh noise too. A large
shift can also saturate a clean model into one flat image, so the decisive share counts
only near-duplicate pairs of non-flat images ("structured" duplicates). The statistics
(structured and raw near-duplicate share, uniformity, total variation, |delta*|, loss
reduction, final relative loss) go to the calibrated combiner
(``calibration/diffusion.json``); the recovered target is the medoid of the chosen
generated set.

A TrojDiff-style trigger lowers the noise amplitude (x_T = gamma eps + mu) as well as shifting
it, and no shift search finds its full-image blend pattern. Version 4 adds a probe for the
amplitude half (``noise_scale_response``): how the model's x0 error grows as the input noise
shrinks, judged against clean references in the calibration, not by the combiner.

Version 5 settles the DDIM generation scan's least diverse candidates by the
denoising-consistency loss alone (``Inverter.settle``; not at ``--budget fast``): a stop-sign
trigger that no square patch matches well fires too rarely for the refinement to find an anchor,
but the descent can move a candidate onto the trigger.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..findings import Artifact, Finding
from ..zoo.diffusion import schedule
from .base import Detector, ScanContext

DUP_MSE = 0.01  # two images (in [0, 1]) closer than this are near-duplicates


@dataclass(frozen=True)
class InversionSettings:
    iters: int            # gradient steps per mode
    batch: int            # fresh noise samples per step (shift loss)
    cons_batch: int       # chains per step (consistency loss)
    cons_steps: int       # reverse steps of the differentiable chain
    refresh: int          # re-generate y_hat every this many steps
    gen: int              # images generated per (mode, sampler) for the decision
    ddpm_steps: int       # sampling steps for DDPM (strided ancestral)
    ddim_steps: int
    lr: float = 0.1
    cons_weight: float = 0.2
    # Both measured worse on the 18-model zoo (docs/bench/diffusion/NOTES.md: a BadDiffusion
    # model found by the default inversion was missed with them on), so they are off by
    # default; the shipped calibration was fitted without them.
    full_image_starts: bool = False
    scale_probe: bool = False
    # The generation scan (see generation_scan): images per candidate, sampling steps, and how
    # many of the best candidates per sampler are confirmed on fresh noise.
    scan_images: int = 8
    scan_steps: int = 20
    scan_top: int = 3
    generation_scan: bool = True
    # Target-driven refinement of the best partly firing shift per sampler (see Inverter.refine).
    refine_iters: int = 40
    refine_steps: int = 5
    refine_batch: int = 4
    refine_lr: float = 0.05
    refinement: bool = True
    # Consistency settling of the DDIM scan's least diverse candidates (see Inverter.settle,
    # detector version 5). Off at --budget fast, which keeps version 4's steps and calibration.
    settle_iters: int = 30
    settle_steps: int = 4
    settle_batch: int = 6
    settle_top: int = 6
    settle_lr: float = 0.05
    settling: bool = True


SETTINGS = {
    "fast": InversionSettings(iters=15, batch=8, cons_batch=4, cons_steps=2, refresh=10, gen=12, ddpm_steps=50,
                              ddim_steps=20, scan_steps=10, refine_iters=20, settling=False),
    "standard": InversionSettings(iters=30, batch=8, cons_batch=4, cons_steps=3, refresh=15, gen=16,
                                  ddpm_steps=100, ddim_steps=20),
    "thorough": InversionSettings(iters=100, batch=16, cons_batch=8, cons_steps=4, refresh=25, gen=32,
                                  ddpm_steps=1000, ddim_steps=100, scan_images=12, scan_steps=50, scan_top=4,
                                  refine_iters=80, refine_steps=8, settle_iters=60, settle_top=8),
}
MODES = {"sde": "ddpm", "ode": "ddim"}  # lambda family -> the sampler it fires under
# Trigger scales (RMS over pixels) tried by the line search: real triggers lie around
# 0.3-0.6; far larger shifts push any model off its data and collapse it, trigger or not.
SCALES = (0.3, 0.45, 0.6)
# Trigger scales tried by generation once the direction is fixed (the structured-duplicate
# probe): a backdoor that only partly fires at the loss-picked scale often fires fully at a
# larger one (measured: a stop-sign BadDiffusion model went from 0.05 to 0.42 structured
# duplicates between RMS 0.45 and 1.0), while clean models stay at 0 up to RMS 1.0 because
# the flat images a large shift saturates them into are not counted.
PROBE_SCALES = (0.45, 0.6, 0.8, 1.0)
PROBE_IMAGES = 8
FEATURES = ("structured_dup", "dup_share", "uniformity_log_ratio", "tv_log_ratio", "delta_rms", "loss_reduction",
            "log_end_loss", "noise_scale_slope")
# The noise-scale probe (``noise_scale_response``, detector version 4): the timestep (as a
# share of T), the two input-noise amplitudes compared, the most of the model's own samples
# used as centres, and the noise draws per centre. With 8 centres and 16 draws the slope moved
# by 0.03-0.06 (sd) between generator seeds, with 16 and 32 by 0.006-0.012 (four models).
NOISE_SCALE_T = 0.6
NOISE_SCALE_GAMMAS = (0.4, 0.8)
NOISE_SCALE_CENTRES = 16
NOISE_SCALE_DRAWS = 32
# A working denoiser first (``denoising_error``): above this relative noise-prediction error
# at t = 0.6 T the model does not remove the noise it is given (untrained or broken weights:
# 0.7-1.1 measured, against 0.005-0.016 for every zoo model and 0.12-0.18 after 200 training
# steps), and every statistic here, the noise-scale slope first, would be read off noise.
DENOISER_MAX_ERROR = 0.5
DENOISER_DRAWS = 8


FLAT_STD = 0.1  # an image whose pixel std (in [0, 1]) is below this is flat (e.g. all background)


def structured_pairs(images: torch.Tensor) -> torch.Tensor:
    """N x N: which pairs of distinct images are near-duplicates of each other AND not flat: a
    large shift can saturate any model into one flat image, while a backdoor target is an image
    with structure of its own."""
    solid = ((images.clamp(-1, 1) + 1) / 2).flatten(1).std(1) >= FLAT_STD
    near = pairwise_mse(images) < DUP_MSE
    return near & solid[:, None] & solid[None, :] & ~torch.eye(len(images), dtype=torch.bool)


def structured_dup(images: torch.Tensor) -> float:
    """Share of distinct pairs that are structured near-duplicates (see structured_pairs)."""
    n = len(images)
    iu = torch.triu_indices(n, n, 1)
    return float(structured_pairs(images)[iu[0], iu[1]].float().mean())


def shift_timesteps(T: int) -> list[int]:
    return [T - 1, int(0.8 * T), int(0.65 * T), int(0.5 * T)]


def pairwise_mse(images: torch.Tensor) -> torch.Tensor:
    """Pairwise MSE in [0, 1] pixel units between images in [-1, 1]."""
    flat = ((images.clamp(-1, 1) + 1) / 2).flatten(1)
    return torch.cdist(flat, flat).pow(2) / flat.shape[1]


def dup_share(images: torch.Tensor) -> float:
    """Fraction of distinct pairs that are near-duplicates."""
    d = pairwise_mse(images)
    n = len(images)
    iu = torch.triu_indices(n, n, 1)
    return float((d[iu[0], iu[1]] < DUP_MSE).float().mean())


def mean_pairwise(images: torch.Tensor) -> float:
    d = pairwise_mse(images)
    n = len(images)
    iu = torch.triu_indices(n, n, 1)
    return float(d[iu[0], iu[1]].mean())


def total_variation(images: torch.Tensor) -> float:
    x = (images.clamp(-1, 1) + 1) / 2
    return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())


def anchor(images: torch.Tensor) -> torch.Tensor | None:
    """The non-flat image with the most structured near-duplicates among ``images`` (the
    target a partly firing backdoor shows), or None when no such pair exists."""
    counts = structured_pairs(images).sum(1)
    return images[int(counts.argmax())] if int(counts.max()) > 0 else None


def medoid(images: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The image with the smallest summed distance to the others, and the share within DUP_MSE of it."""
    d = pairwise_mse(images)
    i = int(d.sum(1).argmin())
    return images[i], float((d[i] < DUP_MSE).float().mean())


@torch.no_grad()
def _noise_level(adapter, t_frac: float) -> tuple[int, float, float]:
    """(t, sqrt(abar_t), sqrt(1 - abar_t)) at the timestep t_frac * T of the adapter's schedule."""
    sched = schedule(adapter.alphas_cumprod)
    t = min(adapter.train_steps - 1, int(t_frac * adapter.train_steps))
    return t, float(sched["s"][t]), float(sched["sigma"][t])


def noise_scale_response(adapter, centres: torch.Tensor, g: torch.Generator, t_frac: float = NOISE_SCALE_T,
                         gammas: tuple[float, ...] = NOISE_SCALE_GAMMAS, draws: int = NOISE_SCALE_DRAWS
                         ) -> dict[str, Any]:
    """How the model denoises noise of reduced amplitude: the per-pixel variance, over noise
    draws, of its x0 prediction from x_t = sqrt(abar_t) c + gamma sqrt(1 - abar_t) eps around
    each centre c (the model's own samples), at each gamma; and the log-slope
    ln(v(gamma_lo) / v(gamma_hi)).

    Why: a TrojDiff-style trigger (Chen et al., CVPR 2023) is a noise *distribution*, x_T =
    gamma eps + mu with gamma < 1, not only a shift; TERD (Mo et al., ICML 2024) estimates gamma
    beside mu for that reason. A model trained only on full-amplitude noise predicts noise of
    about full amplitude, so the smaller the true amplitude, the larger its x0 error. A model
    trained on the attacker's reduced-amplitude noise has learnt to predict it at that scale, so
    its error barely grows as gamma drops (at t = 0.6 T, gamma 0.4 against 0.8, on five zoos from
    five clean bases: slope 1.02-1.28 for all 26 clean models, 0.37-0.96 for all 11 TrojDiff-style
    ones, gamma 0.5 to 0.7; docs/diffusion.md). No mu is needed, and the shift
    inversion, which cannot find the blend pattern, does not need to. The slope is judged
    against clean references (``Calibration.references``), not by the shift-trigger combiner.
    """
    t, s, sig = _noise_level(adapter, t_frac)
    var = {}
    for gamma in gammas:
        total = 0.0
        for c in centres:
            x = s * c + sig * gamma * torch.randn(draws, *c.shape, generator=g)
            x0 = (x - sig * adapter.eps(x, t)) / s
            total += float(x0.var(0).mean())
        var[gamma] = total / len(centres)
    lo, hi = min(gammas), max(gammas)
    return {"t": t, "x0_var": {str(k): round(v, 5) for k, v in var.items()},
            "slope": math.log(max(var[lo], 1e-12) / max(var[hi], 1e-12))}


@torch.no_grad()
def denoising_error(adapter, centres: torch.Tensor, g: torch.Generator, t_frac: float = NOISE_SCALE_T,
                    draws: int = DENOISER_DRAWS) -> float:
    """The model's relative noise-prediction error ||eps_hat - eps||^2 / ||eps||^2 at t_frac * T,
    on x_t = sqrt(abar_t) c + sqrt(1 - abar_t) eps around each centre c (its own samples).

    Why: a model that merely learnt the average image would already score abar_t / (1 - abar_t)
    or less (0.03 for the linear schedule at 0.6 T); one that does not denoise at all scores
    about 1. Such a model passes its input noise straight through to its x0 estimate, whose
    variance then scales as gamma^2: the noise-scale slope becomes 2 ln(0.4 / 0.8) = -1.39 and
    would read as a TrojDiff-style trigger (measured: -1.38 to -1.44 for untrained tiny UNets).
    """
    t, s, sig = _noise_level(adapter, t_frac)
    num = den = 0.0
    for c in centres:
        eps = torch.randn(draws, *c.shape, generator=g)
        num += float((adapter.eps(s * c + sig * eps, t) - eps).pow(2).sum())
        den += float(eps.pow(2).sum())
    return num / max(den, 1e-12)


class Inverter:
    """PureDiffusion-style inversion of one mode (lambda family) on an adapter."""

    def __init__(self, adapter, settings: InversionSettings, mode: str, g: torch.Generator):
        self.a, self.s, self.mode, self.g = adapter, settings, mode, g
        self.sched = schedule(adapter.alphas_cumprod)
        self.ts = shift_timesteps(adapter.train_steps)
        key = "rho_sde" if mode == "sde" else "rho_ode"
        self.lam = [float(self.sched[key][t]) for t in self.ts]
        self.shape = (adapter.channels, adapter.image_size, adapter.image_size)

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, *self.shape, generator=self.g)

    def generate(self, delta: torch.Tensor, n: int, sampler: str | None = None, steps: int | None = None,
                 gamma: float = 1.0) -> torch.Tensor:
        sampler = sampler or MODES[self.mode]
        steps = steps or (self.s.ddpm_steps if sampler == "ddpm" else self.s.ddim_steps)
        return self.a.sample(gamma * self.noise(n) + delta, sampler, steps, self.g)

    def shift_loss(self, delta: torch.Tensor, y_hat: torch.Tensor, n: int | None = None,
                   ts: list[int] | None = None) -> torch.Tensor:
        n = n or self.s.batch
        total = delta.new_zeros(())
        ts = ts or self.ts
        for t in ts:
            lam = self.lam[self.ts.index(t)]
            eps = self.noise(n)
            y = y_hat[torch.randint(0, len(y_hat), (n,), generator=self.g)]
            x_t = self.sched["s"][t] * y + self.sched["k"][t] * delta + self.sched["sigma"][t] * eps
            m = (self.a.eps(x_t, t) - eps).mean(0)
            total = total + (m - lam * delta).pow(2).mean()
        return total / len(ts)

    def chain(self, x: torch.Tensor, steps: int, ode: bool) -> torch.Tensor:
        """A short differentiable reverse chain from x (at t = T) to t = 0: deterministic DDIM
        (eta = 0) steps when ``ode``, else the ancestral step's posterior mean with its noise
        (stochastic, as DDPM samples)."""
        T = self.a.train_steps
        abar = self.a.alphas_cumprod
        times = torch.linspace(T - 1, 0, steps + 1).round().long().tolist()
        for t, t_next in zip(times[:-1], times[1:]):
            eps = self.a.eps(x, t)
            x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
            x0 = x0.clamp(-1.5, 1.5)  # keep the chain's gradients bounded
            if ode or t_next == 0:
                x = abar[t_next].sqrt() * x0 + (1 - abar[t_next]).sqrt() * eps
            else:
                a_t = abar[t] / abar[t_next]
                mean = (abar[t_next].sqrt() * (1 - a_t) * x0 + a_t.sqrt() * (1 - abar[t_next]) * x) / (1 - abar[t])
                var = (1 - abar[t_next]) / (1 - abar[t]) * (1 - a_t)
                x = mean + var.sqrt() * self.noise(len(x))
        return x

    def consistency_loss(self, delta: torch.Tensor, batch: int | None = None, steps: int | None = None
                         ) -> torch.Tensor:
        """Variance across chains of a short differentiable reverse chain's end point (``batch``
        chains of ``steps`` steps; the inversion's own sizes by default)."""
        x = self.chain(self.noise(batch or self.s.cons_batch) + delta, steps or self.s.cons_steps,
                       ode=self.mode == "ode")
        return x.var(0).mean()

    def refine(self, delta: torch.Tensor, target: torch.Tensor, sampler: str) -> torch.Tensor | None:
        """Target-driven refinement (detector version 3): gradient descent on delta so that short
        reverse chains from fresh eps + delta end on ``target``, the image a partly firing
        shift already generates several near-duplicates of.

        Why: the generation scan's patches overlap a trigger only in part (a stop-sign trigger is
        no square), so a backdoor often fires on a few of the images only. Once its target shows,
        the inversion can aim at it, as Elijah and PureDiffusion do with the target known
        (Elijah, An et al., AAAI 2024: the target is what the shifted noise generates). Pulled
        towards one of its own images, a clean model's fresh images do not collapse (measured on
        four of the zoo's clean models: at most one chance pair afterwards), because no small
        shift carries every eps to one image unless a backdoor was trained in. Returns None when
        no point of the descent looked better than the start."""
        s = self.s
        d = delta.clone().requires_grad_(True)
        opt = torch.optim.Adam([d], lr=s.refine_lr)
        # The descent on a few stochastic chains is noisy and can overshoot, so a quick look at
        # a few images (as in the generation scan) every quarter keeps the best point so far;
        # the detector then judges the kept point on fresh noise.
        best, best_score = None, self.quick_look(delta, sampler)
        every = max(1, s.refine_iters // 4)
        for it in range(s.refine_iters):
            x = self.chain(self.noise(s.refine_batch) + d, s.refine_steps, ode=sampler == "ddim")
            loss = (x - target).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                d.clamp_(-3.0, 3.0)
            if (it + 1) % every == 0:
                score = self.quick_look(d.detach(), sampler)
                if score > best_score:
                    best, best_score = d.detach().clone(), score
        return best

    def settle(self, delta: torch.Tensor) -> torch.Tensor:
        """Consistency settling (detector version 5): gradient descent on
        delta, held at its own RMS, so that short deterministic (DDIM) reverse chains from fresh
        eps + delta end on one image: PureDiffusion's denoising-consistency loss on its own, with
        no target needed.

        Why: a patch candidate shaped unlike the trigger (a stop sign with a dark bar: cosine at
        most 0.36 with any square patch) fires too rarely for the target-driven refinement to find
        an anchor. Its images are only a little less diverse than a clean model's. Descending on
        the chains' spread from such a candidate moved it onto the trigger of the three
        VillanDiffusion (ODE) stop-sign models that version 4 calls clean (cosine 0.25 -> 0.4-0.5,
        94 % of fresh images on the target), while on 23 of the five zoos' 26 clean models no
        settled shift made a single duplicate pair (docs/bench/diffusion/NOTES.md). The RMS is
        held because a growing shift saturates any model into one flat image."""
        s = self.s
        assert self.mode == "ode", "settling descends on deterministic (DDIM) chains"
        rms = delta.pow(2).mean().sqrt().clamp_min(1e-6)
        d = delta.clone().requires_grad_(True)
        opt = torch.optim.Adam([d], lr=s.settle_lr)
        for _ in range(s.settle_iters):
            loss = self.consistency_loss(d, s.settle_batch, s.settle_steps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                d.mul_(rms / d.pow(2).mean().sqrt().clamp_min(1e-6))
        return d.detach()

    @torch.no_grad()
    def quick_look(self, delta: torch.Tensor, sampler: str) -> float:
        """Structured near-duplicate share of a few images from eps + delta with a short sampler."""
        return structured_dup(self.look_images(delta, sampler))

    @torch.no_grad()
    def look_images(self, delta: torch.Tensor, sampler: str) -> torch.Tensor:
        """The few images a quick look judges (``scan_images`` with ``scan_steps`` sampling steps)."""
        return self.generate(delta, self.s.scan_images, sampler, steps=self.s.scan_steps)

    def candidates(self) -> list[torch.Tensor]:
        """Starting points: bright and dark square patches over a grid (the gradient-free
        scan), plus full-image starts (uniform shifts and fixed random sign patterns) for
        triggers that cover the whole image, such as TrojDiff's blend."""
        c, h, w = self.shape
        out = []
        if self.s.full_image_starts:
            out += [torch.full(self.shape, amp) for amp in (0.75, -0.75)]
            pattern_g = torch.Generator().manual_seed(1234)  # fixed patterns: the scan stays deterministic
            out += [torch.randint(0, 2, self.shape, generator=pattern_g).float() * 1.5 - 0.75 for _ in range(4)]
        for size in (max(2, h // 4), max(3, (3 * h) // 8)):
            step = max(1, size // 2 + 1)
            for r in list(range(0, h - size, step)) + [h - size]:
                for col in list(range(0, w - size, step)) + [w - size]:
                    for amp in (1.5, -1.5):
                        d = torch.zeros(self.shape)
                        d[:, r:r + size, col:col + size] = amp
                        out.append(d)
        return out

    def relative_loss(self, delta: torch.Tensor, y_hat: torch.Tensor, n: int | None = None,
                      ts: list[int] | None = None) -> torch.Tensor:
        """Shift loss over |delta|^2: scale-free, so the descent is not pulled towards delta = 0
        (where every model, clean or not, has zero shift loss)."""
        return self.shift_loss(delta, y_hat, n, ts) / delta.pow(2).mean().clamp_min(1e-6)

    @torch.no_grad()
    def pick_start(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The candidate with the smallest relative shift loss at the two highest timesteps,
        where the unknown target barely enters x_t."""
        best, best_score = None, math.inf
        for d in self.candidates():
            score = float(self.relative_loss(d, y_hat, n=8, ts=self.ts[:2]))
            if score < best_score:
                best, best_score = d, score
        return best

    def _y_hat(self, delta: torch.Tensor) -> torch.Tensor:
        steps = self.s.ddim_steps if self.mode == "ode" else max(10, self.s.ddpm_steps // 4)
        return self.generate(delta, 8, steps=steps)

    def run(self) -> dict[str, Any]:
        """Patch scan, then descent on the relative shift loss plus consistency, then a
        line search for the trigger's scale (the fixed point of the shift relation)."""
        y_hat = torch.zeros(4, *self.shape)  # mid-grey until the first refresh
        delta = self.pick_start(y_hat).clone()
        with torch.no_grad():
            y_hat = self._y_hat(delta)
            start_loss = float(self.relative_loss(delta, y_hat, n=16))
        delta.requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=self.s.lr)
        for it in range(self.s.iters):
            loss = self.relative_loss(delta, y_hat) + self.s.cons_weight * self.consistency_loss(delta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                delta.clamp_(-3.0, 3.0)
            if (it + 1) % self.s.refresh == 0 and it + 1 < self.s.iters:
                with torch.no_grad():
                    y_hat = self._y_hat(delta.detach())
        unit = delta.detach() / delta.detach().pow(2).mean().sqrt().clamp_min(1e-6)
        with torch.no_grad():
            scored = [(float(self.relative_loss(c * unit, y_hat, n=16)), c) for c in SCALES]
        # The smallest scale that fits nearly as well as the best: a clean model's relative
        # loss keeps falling as a large shift saturates it, a backdoor's bottoms out at its trigger.
        best = min(loss for loss, _ in scored)
        end_loss, scale = next((loss, c) for loss, c in scored if loss <= 2 * best)
        probe = self.probe_scales(unit, scale) if self.s.scale_probe else {"scale": scale, "scores": []}
        scale = probe["scale"]
        return {"delta": scale * unit, "start_loss": start_loss, "end_loss": end_loss, "scale_losses": scored,
                "scale_probe": probe["scores"]}

    @torch.no_grad()
    def probe_scales(self, unit: torch.Tensor, loss_scale: float) -> dict[str, Any]:
        """Pick the trigger's scale by what it generates: the scale (of PROBE_SCALES and the
        loss-picked one) whose few images from eps + scale * unit have the highest structured
        duplicate share; ties keep the smaller scale, and the loss-picked scale stays unless
        another beats it by more than one coincidental pair (a model that memorised its
        training images repeats one now and then). The decision statistic is measured
        afterwards on fresh images, so this choice does not grade itself."""
        scores = {}
        for c in sorted({loss_scale, *PROBE_SCALES}):
            scores[c] = structured_dup(self.generate(c * unit, PROBE_IMAGES))
        best = max(scores.values())
        one_pair = 2.0 / (PROBE_IMAGES * (PROBE_IMAGES - 1))
        scale = (loss_scale if best <= scores[loss_scale] + 1.5 * one_pair
                 else min(c for c, v in scores.items() if v >= best))
        return {"scale": scale, "scores": [[c, v] for c, v in scores.items()]}


def compare(imgs: torch.Tensor, clean: torch.Tensor) -> dict[str, Any]:
    """Collapse statistics of images generated from a shifted start, relative to clean sampling."""
    return {"images": imgs,
            "dup_share": dup_share(imgs) - dup_share(clean),
            "uniformity_log_ratio": math.log(max(1e-6, mean_pairwise(clean)) / max(1e-6, mean_pairwise(imgs))),
            "tv_log_ratio": math.log(max(1e-6, total_variation(clean)) / max(1e-6, total_variation(imgs))),
            "structured_dup": structured_dup(imgs) - structured_dup(clean)}


def evaluate(adapter, delta: torch.Tensor, inv: Inverter, clean_sets: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Generate from eps + delta with DDPM and DDIM; compare with the clean sets."""
    return {sampler: compare(inv.generate(delta, inv.s.gen, sampler), clean_sets[sampler])
            for sampler in ("ddpm", "ddim")}


@torch.no_grad()
def generation_scan(inv: Inverter, candidates: list[torch.Tensor], sampler: str,
                    looks: list[tuple[float, float]] | None = None) -> list[tuple[float, int]]:
    """Generation-aware, gradient-free search: a few images from eps + candidate per patch
    candidate, with a short sampler; the best candidates by structured near-duplicate share,
    as (share, index), best first (ties keep the candidates' order).

    Why: the shift loss cannot single out every trigger. At a fixed scale a clean model fits
    it along directions of its own as well as a stop-sign BadDiffusion model fits it along
    its true trigger (docs/diffusion.md, "Rebuilt zoo"), while the backdoor shows plainly in
    what the model generates: a patch overlapping a third of the trigger already makes a
    backdoored model's images collapse onto its target, and a clean model's do not. This is
    the generation-side check of PureDiffusion and Elijah (the backdoor target is what the
    shifted noise generates) applied to the starting candidates instead of only to the
    descended trigger. The share of the chosen few images is biased upwards by the choice,
    so the detector re-measures the best ones on fresh noise before judging them.

    ``looks``, when given, receives (share, mean pairwise distance of the same images) for every
    candidate: where no candidate makes a pair of duplicates, a less diverse set is the only hint
    of a partly firing trigger (used by the consistency settling, version 5)."""
    scores = []
    for i, d in enumerate(candidates):
        images = inv.look_images(d, sampler)
        scores.append((structured_dup(images), i))
        if looks is not None:
            looks.append((scores[-1][0], mean_pairwise(images)))
    scores.sort(key=lambda si: (-si[0], si[1]))
    return scores[:inv.s.scan_top]


class DiffusionInversionDetector(Detector):
    id = "diffusion-inversion"
    version = "5.1"
    rule_id = "MSBD-D001"
    title = "Diffusion trigger inversion (PureDiffusion-style multi-timestep shift + consistency)"
    families = ("diffusion",)
    needs_clean_data = False
    cost = "high"
    order = 90  # after the classifier detectors in listings; it is the only diffusion one

    def run(self, adapter, context: ScanContext) -> list[Finding]:
        settings = SETTINGS[context.budget]
        g = context.generator(salt=41)
        clean_sets = {}
        probe = Inverter(adapter, settings, "sde", g)
        for sampler in ("ddpm", "ddim"):
            clean_sets[sampler] = probe.generate(torch.zeros(probe.shape), settings.gen, sampler)
        # On its own generator, so every later step draws the same noise as in version 5.
        error = denoising_error(adapter, clean_sets["ddim"][:NOISE_SCALE_CENTRES], context.generator(salt=45))
        if error > DENOISER_MAX_ERROR:
            return [self.finding("skipped", "info", (
                f"not a working denoiser: its noise prediction at t = {NOISE_SCALE_T:g} T is off by "
                f"{error:.0%} of the noise (at most {DENOISER_MAX_ERROR:.0%} expected; trained models "
                "score about 1%), so trigger inversion and the noise-scale probe would measure noise; "
                "untrained or corrupted weights?"), evidence={"denoising_error": round(error, 4),
                                                           "max_error": DENOISER_MAX_ERROR})]
        modes = {}
        for mode in MODES:
            context.progress(f"diffusion-inversion: inverting ({mode} shift scale)")
            inv = Inverter(adapter, settings, mode, g)
            res = inv.run()
            res["eval"] = evaluate(adapter, res["delta"], inv, clean_sets)
            modes[mode] = res
        # Each shift to judge: the inverted trigger of each mode under both samplers, then the
        # generation scan's best patches under the sampler of each mode (run after the
        # inversions, so those consume the same random draws as without the scan).
        options = [{"source": "inversion", "mode": m, "sampler": smp, "delta": modes[m]["delta"],
                    "eval": modes[m]["eval"][smp]} for m in modes for smp in ("ddpm", "ddim")]
        def judge(delta: torch.Tensor, smp: str) -> dict[str, Any]:  # on fresh noise, with the decision's sampling
            return compare(probe.generate(delta, settings.gen, smp), clean_sets[smp])

        scan_top: dict[str, list] = {}
        looks: dict[str, list[tuple[float, float]]] = {}  # per sampler and candidate: (share, spread)
        if settings.generation_scan:  # the clean-set Inverter serves: same settings, generator and candidates
            cands = probe.candidates()
            for mode, smp in MODES.items():
                context.progress(f"diffusion-inversion: generation scan of {len(cands)} candidates ({smp.upper()})")
                looks[smp] = []
                top = generation_scan(probe, cands, smp, looks[smp])
                scan_top[smp] = [[round(v, 4), i] for v, i in top]
                for _, i in top:  # confirmed, so the choice does not grade itself
                    options.append({"source": "generation-scan", "mode": mode, "sampler": smp, "delta": cands[i],
                                    "eval": judge(cands[i], smp)})
        # The decision statistic: structured near-duplicate share, then the raw share (ties: the first).
        rank = lambda o: (o["eval"]["structured_dup"], o["eval"]["dup_share"])  # noqa: E731
        refined: dict[str, dict] = {}
        if settings.refinement:  # the best shift per sampler, where it already shows a target, aimed at it
            for smp in ("ddpm", "ddim"):
                start = max((o for o in options if o["sampler"] == smp), key=rank)
                target = anchor(start["eval"]["images"])
                if target is None:
                    continue
                context.progress(f"diffusion-inversion: refining the best {smp.upper()} shift towards its target")
                delta = probe.refine(start["delta"], target, smp)
                refined[smp] = {"from": start["source"], "before": round(start["eval"]["structured_dup"], 4),
                                "after": None}
                if delta is not None:
                    ev = judge(delta, smp)
                    options.append({"source": "refined", "mode": start["mode"], "sampler": smp, "delta": delta,
                                    "eval": ev})
                    refined[smp]["after"] = round(ev["structured_dup"], 4)
        chosen = max(options, key=rank)
        # Consistency settling (version 5), on its own generator so every step above draws the same
        # noise as in version 4: the DDIM scan's candidates with the most duplicates, then the least
        # diverse images, settled and judged on fresh noise. DDIM only: from the DDPM scan's
        # candidates it lifted none of three BadDiffusion (SDE) misses above 0.1 structured
        # duplicates, with stochastic or deterministic chains. A settled shift replaces the choice
        # only with more structured duplicates: agreeing chains often end on one flat image, whose
        # raw duplicate share would otherwise win every tie at zero and change the clean models'
        # other statistics.
        settled: list[list] = []
        if settings.settling and "ddim" in looks:
            settler = Inverter(adapter, settings, "ode", context.generator(salt=44))
            order = sorted(range(len(cands)), key=lambda i: (-looks["ddim"][i][0], looks["ddim"][i][1], i))
            context.progress(f"diffusion-inversion: settling the {settings.settle_top} least diverse DDIM candidates")
            for i in order[:settings.settle_top]:
                delta = settler.settle(cands[i])
                ev = compare(settler.generate(delta, settings.gen, "ddim"), clean_sets["ddim"])
                settled.append([i, round(looks["ddim"][i][0], 4), round(ev["structured_dup"], 4)])
                if ev["structured_dup"] > chosen["eval"]["structured_dup"]:
                    chosen = {"source": "settled", "mode": "ode", "sampler": "ddim", "delta": delta, "eval": ev}
                    options.append(chosen)
        # Last, on its own generator, so every step above draws the same noise as in version 3.
        context.progress("diffusion-inversion: noise-scale probe (reduced-amplitude noise)")
        g_scale = context.generator(salt=43)
        scale = noise_scale_response(adapter, clean_sets["ddim"][:NOISE_SCALE_CENTRES], g_scale)
        mid_gamma = sum(NOISE_SCALE_GAMMAS) / len(NOISE_SCALE_GAMMAS)
        scaled_images = adapter.sample(mid_gamma * torch.randn(8, *probe.shape, generator=g_scale), "ddim",
                                       settings.ddim_steps, g_scale)
        best_mode, best_sampler, source = chosen["mode"], chosen["sampler"], chosen["source"]
        best = modes[best_mode]
        ev = chosen["eval"]
        target, success = medoid(ev["images"])
        features = {
            "structured_dup": ev["structured_dup"],
            "dup_share": ev["dup_share"],
            "uniformity_log_ratio": max(o["eval"]["uniformity_log_ratio"] for o in options),
            "tv_log_ratio": ev["tv_log_ratio"],
            "delta_rms": float(chosen["delta"].pow(2).mean().sqrt()),
            "loss_reduction": math.log(max(1e-8, best["start_loss"]) / max(1e-8, best["end_loss"])),
            "log_end_loss": math.log10(max(1e-6, best["end_loss"])),
            "noise_scale_slope": scale["slope"],
        }
        context.results[self.id] = {**features, "mode": best_mode, "sampler": best_sampler, "source": source,
                                    "delta": chosen["delta"], "target": target, "inverted_success": success,
                                    "scale_losses": {m: modes[m]["scale_losses"] for m in modes},
                                    "scale_probe": {m: modes[m]["scale_probe"] for m in modes},
                                    "generation_scan": scan_top, "refined": refined, "settled": settled,
                                    "noise_scale": scale, "denoising_error": error,
                                    "per_mode": {m: {s: {k: v for k, v in modes[m]["eval"][s].items() if k != "images"}
                                                     for s in ("ddpm", "ddim")} for m in modes}}
        vis = chosen["delta"]
        lo, hi = float(vis.min()), float(vis.max())
        what = {"inversion": f"Inverted trigger delta* ({best_mode} scale",
                "generation-scan": f"Trigger candidate found by the generation scan ({best_sampler.upper()}",
                "refined": f"Trigger refined towards the recovered target ({best_sampler.upper()}",
                "settled": "Trigger candidate settled by denoising consistency (DDIM"}[source]
        artifacts = [
            Artifact.from_array("inverted_trigger", f"{what}; range {lo:.2f}..{hi:.2f}, shown rescaled)",
                                (vis - lo) / max(1e-6, hi - lo), scale=8),
            Artifact.from_array("recovered_target", f"Recovered target: medoid of {settings.gen} images from "
                                f"eps + delta* ({best_sampler.upper()}); {success:.0%} of them are near-duplicates "
                                "of it", (target.clamp(-1, 1) + 1) / 2, scale=8),
            Artifact.from_array("generated_from_trigger", "First images generated from eps + delta*",
                                _grid((ev["images"][:8].clamp(-1, 1) + 1) / 2), scale=4),
            Artifact.from_array("generated_from_scaled_noise", f"Images generated from {mid_gamma:g} * eps (DDIM), "
                                "the noise amplitude a TrojDiff-style trigger lowers",
                                _grid((scaled_images.clamp(-1, 1) + 1) / 2), scale=4),
        ]
        evidence = {**{k: round(v, 4) for k, v in features.items()}, "mode": best_mode, "sampler": best_sampler,
                    "source": source, "inverted_trigger_success": round(success, 4), "start_loss": best["start_loss"],
                    "end_loss": best["end_loss"], "generation_scan": scan_top, "refined": refined, "settled": settled,
                    "noise_scale": scale, "denoising_error": round(error, 4),
                    "per_mode": context.results[self.id]["per_mode"],
                    "settings": settings.__dict__}
        # The detector's own status comes from the calibrated verdict; here it reports what it found.
        found = ev["structured_dup"] > 0.25
        who = "A trigger candidate" if source == "generation-scan" else "Inverted trigger"
        return [self.finding("failed" if found else "passed", "info",
                             (f"{who} makes the model generate near-duplicates ({ev['dup_share']:.0%} of pairs "
                              f"above clean sampling, {best_sampler.upper()}); recovered target attached."
                              if found else "No inverted trigger made the generated images collapse "
                              f"(best near-duplicate share above clean: {ev['dup_share']:.0%})."),
                             score=features["dup_share"], evidence=evidence, artifacts=artifacts)]


def _grid(images: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> C x H x (N*W) strip, with a 1-pixel gap."""
    n, c, h, w = images.shape
    strip = torch.ones(c, h, n * (w + 1) - 1)
    for i in range(n):
        strip[:, :, i * (w + 1):i * (w + 1) + w] = images[i]
    return strip
