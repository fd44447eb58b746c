"""Diffusion adapter: a diffusers unconditional pipeline folder, loaded without running its code.

Accepted: ``model_index.json`` naming an allow-listed pipeline whose components are
``["diffusers", <class>]`` pairs, a ``UNet2DModel`` built from ``unet/config.json`` with
weights from ``unet/diffusion_pytorch_model.safetensors`` only, and a scheduler class
from an allow-list of diffusers schedulers. Anything else (custom component classes,
``trust_remote_code`` pipelines, pickle-only weights, unknown schedulers, non-epsilon
prediction) raises ``UnsupportedModelError``: the scan is INCOMPLETE (exit 3), never clean.

Sampling is our own loop from a given x_T (pipelines draw their own noise), with the
repo's scheduler or with DDPM / DDIM built from the same beta schedule, because a
backdoor can be sampler-specific (SDE-trained ones fire under DDPM, ODE-trained ones
under DDIM).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UnsupportedModelError
from ..families import Family, read_json
from ..sources import Snapshot

PIPELINES = {"DDPMPipeline", "DDIMPipeline", "PNDMPipeline"}
SCHEDULERS = {"DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "EulerDiscreteScheduler",
              "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
              "LMSDiscreteScheduler", "HeunDiscreteScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler"}
UNETS = {"UNet2DModel"}
WEIGHTS = "diffusion_pytorch_model.safetensors"


@dataclass
class DiffusionAdapter:
    """What diffusion detectors see: the eps-prediction network, its schedule and a sampler."""

    unet: Any
    scheduler_class: str
    scheduler_config: dict[str, Any]
    alphas_cumprod: torch.Tensor
    image_size: int
    channels: int
    architecture: str = "UNet2DModel"

    @property
    def train_steps(self) -> int:
        return int(len(self.alphas_cumprod))

    @torch.no_grad()
    def eps_nograd(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        return self.eps(x, t)

    def eps(self, x: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """The model's noise prediction at integer timestep(s) t (differentiable in x)."""
        if not torch.is_tensor(t):
            t = torch.full((x.shape[0],), int(t), dtype=torch.long)
        return self.unet(x, t).sample

    def scheduler(self, sampler: str):
        """A fresh scheduler: ``repo`` (the repo's own class) or ``ddpm`` / ``ddim`` on the same betas."""
        import diffusers

        name = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler"}.get(sampler, self.scheduler_class)
        cls = getattr(diffusers, name)
        return cls.from_config(self.scheduler_config)

    @torch.no_grad()
    def sample(self, x_T: torch.Tensor, sampler: str = "ddpm", steps: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1] (unclipped) generated from the given starting noise."""
        return sample_with(self.unet, self.scheduler(sampler), sampler, x_T, steps, generator)

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "num_classes": None, "labels": None, "preprocess": None,
                "scheduler": self.scheduler_class, "train_timesteps": self.train_steps,
                "image_size": self.image_size, "channels": self.channels,
                "prediction_type": self.scheduler_config.get("prediction_type", "epsilon")}


@torch.no_grad()
def sample_with(unet, scheduler, sampler: str, x_T: torch.Tensor, steps: int | None,
                generator: torch.Generator | None) -> torch.Tensor:
    """Our reverse loop: x_T -> x_0 with ``scheduler`` (a DDPM scheduler is turned into
    DDIM by ``sampler='ddim'`` so both use the repo's betas)."""
    import diffusers

    if sampler == "ddim" and not isinstance(scheduler, diffusers.DDIMScheduler):
        scheduler = diffusers.DDIMScheduler.from_config(scheduler.config)
    elif sampler == "ddpm" and not isinstance(scheduler, diffusers.DDPMScheduler):
        scheduler = diffusers.DDPMScheduler.from_config(scheduler.config)
    steps = steps or scheduler.config.num_train_timesteps
    scheduler.set_timesteps(steps)
    x = x_T * getattr(scheduler, "init_noise_sigma", 1.0)
    was_training = unet.training
    unet.eval()
    kw = {"generator": generator} if sampler != "ddim" else {}
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        eps = unet(model_in, torch.full((x.shape[0],), int(t), dtype=torch.long)).sample
        try:
            x = scheduler.step(eps, t, x, **kw).prev_sample
        except TypeError:  # schedulers without a generator argument
            x = scheduler.step(eps, t, x).prev_sample
    unet.train(was_training)
    return x


def load_frozen(model, path, what: str, snapshot: Snapshot):
    """Load safetensors weights into ``model`` strictly, mark the file loaded, freeze the model."""
    from safetensors.torch import load_file

    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise UnsupportedModelError(f"{what} weights do not match its config: {str(exc)[:200]}") from None
    snapshot.mark_loaded(path)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_diffusion(snapshot: Snapshot, family: Family) -> DiffusionAdapter:
    """Build the adapter from JSON configs and safetensors weights; refuse anything else."""
    from diffusers import UNet2DModel

    index = family.config
    pipe = index.get("_class_name")
    if pipe not in PIPELINES:
        raise UnsupportedModelError(f"pipeline class {pipe!r} is not supported (supported: "
                                    f"{', '.join(sorted(PIPELINES))}); custom pipeline code is never run")
    components = {k: v for k, v in index.items() if not k.startswith("_")}
    for name, spec in components.items():
        if not (isinstance(spec, list) and len(spec) == 2):
            raise UnsupportedModelError(f"model_index.json component {name!r} is not a [library, class] pair")
        if spec[0] != "diffusers":
            raise UnsupportedModelError(f"component {name!r} comes from {spec[0]!r} ({spec[1]}): custom component "
                                        "code is never imported (trust_remote_code stays off)")
    unet_spec, sched_spec = components.get("unet"), components.get("scheduler")
    if not unet_spec or unet_spec[1] not in UNETS:
        raise UnsupportedModelError(f"unet component {unet_spec and unet_spec[1]!r} is not supported "
                                    f"(supported: {', '.join(sorted(UNETS))})")
    if not sched_spec or sched_spec[1] not in SCHEDULERS:
        raise UnsupportedModelError(f"scheduler class {sched_spec and sched_spec[1]!r} is not in the allow-list "
                                    f"of diffusers schedulers")
    unet_cfg_path = snapshot.file("unet/config.json")
    sched_cfg_path = snapshot.file("scheduler/scheduler_config.json")
    if unet_cfg_path is None or sched_cfg_path is None:
        raise UnsupportedModelError("diffusers repo lacks unet/config.json or scheduler/scheduler_config.json")
    unet_cfg, sched_cfg = read_json(unet_cfg_path), read_json(sched_cfg_path)
    for cfg, file, allowed in ((unet_cfg, "unet/config.json", UNETS), (sched_cfg, "scheduler/scheduler_config.json",
                                                                       SCHEDULERS)):
        cls = cfg.get("_class_name")
        if cls not in allowed:
            raise UnsupportedModelError(f"{file} names class {cls!r}, which is not allow-listed")
    if sched_cfg["_class_name"] != sched_spec[1]:
        raise UnsupportedModelError(f"model_index.json names scheduler {sched_spec[1]} but scheduler_config.json "
                                    f"names {sched_cfg['_class_name']}")
    prediction = sched_cfg.get("prediction_type", "epsilon")
    if prediction != "epsilon":
        raise UnsupportedModelError(f"prediction_type {prediction!r} is not supported (epsilon only)")
    weights = snapshot.file(f"unet/{WEIGHTS}")
    if weights is None:
        raise UnsupportedModelError(f"no safetensors weights for the unet (unet/{WEIGHTS}); pickle-based "
                                    "weights are never loaded")
    try:
        unet = UNet2DModel.from_config({k: v for k, v in unet_cfg.items() if not k.startswith("_")})
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise UnsupportedModelError(f"unet/config.json does not build a UNet2DModel: {str(exc)[:200]}") from None
    load_frozen(unet, weights, "unet", snapshot)
    from diffusers import DDPMScheduler

    betas_sched = DDPMScheduler.from_config(sched_cfg)  # the beta schedule, whatever the class
    size = unet_cfg.get("sample_size", 32)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    return DiffusionAdapter(unet=unet, scheduler_class=sched_cfg["_class_name"], scheduler_config=dict(sched_cfg),
                            alphas_cumprod=betas_sched.alphas_cumprod.clone().float(), image_size=size,
                            channels=int(unet_cfg.get("in_channels", 3)))
