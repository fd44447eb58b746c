"""Text-to-image adapter: a diffusers ``StableDiffusionPipeline`` folder, loaded without running its code.

Accepted: ``model_index.json`` naming ``StableDiffusionPipeline`` with a
``UNet2DConditionModel``, an ``AutoencoderKL``, a transformers ``CLIPTextModel`` and
``CLIPTokenizer`` (files: tokenizer.json or vocab.json + merges.txt, data only), a scheduler
from the unconditional adapter's allow-list, and weights from safetensors only. The safety
checker and feature extractor, when named, are allow-listed classes that are never loaded.
Anything else (custom component classes, pickle-only weights, unknown schedulers,
non-epsilon prediction) raises ``UnsupportedModelError``: the scan is INCOMPLETE (exit 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import UnsupportedModelError
from ..families import Family, read_json
from ..sources import Snapshot
from .diffusion import SCHEDULERS, WEIGHTS, load_frozen

PIPELINES = {"StableDiffusionPipeline"}
REQUIRED = {"unet": ("diffusers", {"UNet2DConditionModel"}), "vae": ("diffusers", {"AutoencoderKL"}),
            "text_encoder": ("transformers", {"CLIPTextModel"}),
            "tokenizer": ("transformers", {"CLIPTokenizer", "CLIPTokenizerFast"}),
            "scheduler": ("diffusers", SCHEDULERS)}
# Named by real Stable Diffusion repos; recognised by class, never loaded (they do not condition generation).
IGNORED = {"safety_checker": {("stable_diffusion", "StableDiffusionSafetyChecker")},
           "feature_extractor": {("transformers", "CLIPImageProcessor"), ("transformers", "CLIPFeatureExtractor")},
           "image_encoder": set()}


@dataclass
class TextToImageAdapter:
    """What text-to-image detectors see: tokenizer, text encoder, conditional UNet, VAE, schedule."""

    tokenizer: Any
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler_class: str
    scheduler_config: dict[str, Any]
    architecture: str = "UNet2DConditionModel"

    @property
    def max_tokens(self) -> int:
        return int(min(self.tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings))

    def token_ids(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(prompts, padding="max_length", max_length=self.max_tokens, truncation=True,
                              return_tensors="pt").input_ids

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        return self.text_encoder(self.token_ids(prompts)).last_hidden_state

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        return int(self.unet.config.in_channels), size, size

    def scheduler(self, kind: str = "ddim"):
        import diffusers

        name = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler"}.get(kind, self.scheduler_class)
        return getattr(diffusers, name).from_config(self.scheduler_config)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1]."""
        scale = float(getattr(self.vae.config, "scaling_factor", 1.0) or 1.0)
        return ((self.vae.decode(latents / scale).sample + 1) / 2).clamp(0, 1)

    def describe(self) -> dict[str, Any]:
        c, h, _ = self.latent_shape
        return {"architecture": self.architecture, "num_classes": None, "labels": None, "preprocess": None,
                "scheduler": self.scheduler_class, "text_encoder": "CLIPTextModel",
                "vocab_size": int(len(self.tokenizer)), "max_tokens": self.max_tokens,
                "latent_channels": c, "latent_size": h,
                "prediction_type": self.scheduler_config.get("prediction_type", "epsilon")}


def check_index(index: dict[str, Any]) -> None:
    """Refuse anything but an allow-listed StableDiffusionPipeline layout (JSON only, nothing imported)."""
    pipe = index.get("_class_name")
    if pipe not in PIPELINES:
        raise UnsupportedModelError(f"pipeline class {pipe!r} is not supported for text-to-image (supported: "
                                    f"{', '.join(sorted(PIPELINES))}); custom pipeline code is never run")
    components = {k: v for k, v in index.items() if not k.startswith("_") and k != "requires_safety_checker"}
    for name, spec in components.items():
        if not (isinstance(spec, list) and len(spec) == 2):
            raise UnsupportedModelError(f"model_index.json component {name!r} is not a [library, class] pair")
        if spec == [None, None] and name not in REQUIRED:
            continue
        if name in IGNORED:
            if tuple(spec) not in IGNORED[name]:
                raise UnsupportedModelError(f"component {name!r} is {spec[0]!r}.{spec[1]}, which is not allow-listed: "
                                            "custom component code is never imported (trust_remote_code stays off)")
            continue
        if name not in REQUIRED:
            raise UnsupportedModelError(f"unknown pipeline component {name!r} ({spec[0]}.{spec[1]})")
        library, classes = REQUIRED[name]
        if spec[0] != library:
            raise UnsupportedModelError(f"component {name!r} comes from {spec[0]!r} ({spec[1]}): custom component "
                                        "code is never imported (trust_remote_code stays off)")
        if spec[1] not in classes:
            what = "scheduler class" if name == "scheduler" else f"{name} class"
            raise UnsupportedModelError(f"{what} {spec[1]!r} is not in the allow-list ({', '.join(sorted(classes))})")
    missing = sorted(set(REQUIRED) - set(components))
    if missing:
        raise UnsupportedModelError(f"model_index.json lacks component(s) {', '.join(missing)}")


def _config(snapshot: Snapshot, file: str, allowed: set[str] | None) -> dict[str, Any]:
    path = snapshot.file(file)
    if path is None:
        raise UnsupportedModelError(f"text-to-image repo lacks {file}")
    cfg = read_json(path)
    if cfg.get("auto_map") or cfg.get("trust_remote_code"):
        raise UnsupportedModelError(f"{file} asks for custom code (auto_map); trust_remote_code stays off")
    if allowed is not None and cfg.get("_class_name") not in allowed:
        raise UnsupportedModelError(f"{file} names class {cfg.get('_class_name')!r}, which is not allow-listed")
    return cfg


def _weights(snapshot: Snapshot, folder: str, file: str):
    path = snapshot.file(f"{folder}/{file}")
    if path is None:
        raise UnsupportedModelError(f"no safetensors weights for the {folder} ({folder}/{file}); pickle-based "
                                    "weights are never loaded")
    return path


def load_text_to_image(snapshot: Snapshot, family: Family) -> TextToImageAdapter:
    """Build the adapter from JSON configs, tokenizer data files and safetensors weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    check_index(family.config)
    sched_spec = family.config["scheduler"][1]
    unet_cfg = _config(snapshot, "unet/config.json", {"UNet2DConditionModel"})
    vae_cfg = _config(snapshot, "vae/config.json", {"AutoencoderKL"})
    sched_cfg = _config(snapshot, "scheduler/scheduler_config.json", SCHEDULERS)
    text_cfg = _config(snapshot, "text_encoder/config.json", None)
    if sched_cfg["_class_name"] != sched_spec:
        raise UnsupportedModelError(f"model_index.json names scheduler {sched_spec} but scheduler_config.json "
                                    f"names {sched_cfg['_class_name']}")
    if sched_cfg.get("prediction_type", "epsilon") != "epsilon":
        raise UnsupportedModelError(f"prediction_type {sched_cfg.get('prediction_type')!r} is not supported "
                                    "(epsilon only)")
    archs = text_cfg.get("architectures") or ["CLIPTextModel"]
    if archs != ["CLIPTextModel"] or text_cfg.get("model_type", "clip_text_model") != "clip_text_model":
        raise UnsupportedModelError(f"text_encoder/config.json describes {archs}, not a CLIPTextModel")
    tok_files = [f for f in ("tokenizer/tokenizer.json", "tokenizer/vocab.json") if snapshot.file(f)]
    if not tok_files:
        raise UnsupportedModelError("tokenizer folder has neither tokenizer.json nor vocab.json + merges.txt")
    weights = {name: _weights(snapshot, name, WEIGHTS) for name in ("unet", "vae")}
    weights["text_encoder"] = _weights(snapshot, "text_encoder", "model.safetensors")
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(snapshot.file(tok_files[0]).parent))
        unet = UNet2DConditionModel.from_config({k: v for k, v in unet_cfg.items() if not k.startswith("_")})
        vae = AutoencoderKL.from_config({k: v for k, v in vae_cfg.items() if not k.startswith("_")})
        text_encoder = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in text_cfg.items()
                                                        if not k.startswith("_") and k != "architectures"}))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UnsupportedModelError(f"pipeline configs could not be built: {str(exc)[:200]}") from None
    load_frozen(unet, weights["unet"], "unet", snapshot)
    load_frozen(vae, weights["vae"], "vae", snapshot)
    load_frozen(text_encoder, weights["text_encoder"], "text_encoder", snapshot)
    if int(unet.config.cross_attention_dim) != int(text_encoder.config.hidden_size):
        raise UnsupportedModelError(f"unet cross_attention_dim {unet.config.cross_attention_dim} does not match the "
                                    f"text encoder's hidden size {text_encoder.config.hidden_size}")
    return TextToImageAdapter(tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, vae=vae,
                              scheduler_class=sched_cfg["_class_name"], scheduler_config=dict(sched_cfg))
