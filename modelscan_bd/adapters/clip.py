"""The CLIP interface, and loaders for open_clip and transformers CLIP repos.

Every CLIP model, whatever library defined it, becomes a ``ClipAdapter``:

* ``encode_image(x)``: [0, 1] pixels (NCHW, at the model's input size) -> L2-normalised
  embeddings; normalisation (mean/std) lives inside, as for classifiers, so triggers are
  optimised in the space attackers paint them in;
* ``encode_text(tokens)`` -> L2-normalised embeddings; ``tokenize(list[str])`` -> tokens;
* ``preprocess`` (size, mean, std);
* ``zero_shot(labels)``: a ``ClassifierAdapter`` whose logits are the scaled cosine
  similarities to prompt embeddings of the labels, so the classifier pipeline (exposure,
  trigger recovery) runs on CLIP unchanged.

Loading rules: weights from safetensors only, configs from JSON, remote code never.
open_clip repos are laid out as ``hf-hub:`` loading expects (``open_clip_config.json``
with ``model_cfg`` and ``preprocess_cfg``, ``open_clip_model.safetensors``); the model is
built from that config by open_clip's own factory, from the local snapshot, no network.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CorruptFileError, InputError, UnsupportedModelError
from ..families import Family, read_json
from ..sources import Snapshot
from .classifier import ClassifierAdapter, Preprocess

# open_clip's defaults (OPENAI_DATASET_MEAN/STD), used when preprocess_cfg lacks them.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# A few of CLIP's ImageNet prompt templates (Radford et al., 2021); averaged per label.
PROMPT_TEMPLATES = ("a photo of a {}.", "a blurry photo of a {}.", "a photo of the {}.", "a low resolution photo of a {}.",
                    "a good photo of a {}.")


class PixelImageTower(nn.Module):
    """[0, 1] pixels -> unnormalised image features, through the model's image tower."""

    def __init__(self, tower: nn.Module, mean, std):
        super().__init__()
        self.tower = tower
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower((x - self.mean) / self.std)


class _OpenClipVisual(nn.Module):
    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, z):  # open_clip's CLIP.encode_image is self.visual(image)
        return self.visual(z)


class _HFVisual(nn.Module):
    def __init__(self, vision_model: nn.Module, projection: nn.Module):
        super().__init__()
        self.vision_model = vision_model
        self.projection = projection

    def forward(self, z):
        return self.projection(self.vision_model(pixel_values=z).pooler_output)


class ZeroShotNet(nn.Module):
    """Image tower + fixed class text embeddings: logits = scale * cos(image, class)."""

    def __init__(self, image_tower: nn.Module, class_features: torch.Tensor, scale: float):
        super().__init__()
        self.image_tower = image_tower
        self.register_buffer("class_features", F.normalize(class_features.detach().float(), dim=-1))
        self.scale = float(scale)

    def forward(self, x):
        return self.scale * F.normalize(self.image_tower(x), dim=-1) @ self.class_features.T


@dataclass
class ClipAdapter:
    """What a CLIP detector may use (see the module docstring)."""

    image_tower: PixelImageTower  # pixels -> unnormalised features (eval mode)
    text_fn: Callable[[torch.Tensor], torch.Tensor]  # tokens -> unnormalised features
    tokenizer: Callable[[list[str]], torch.Tensor]
    preprocess: Preprocess
    logit_scale: float
    architecture: str
    library: str
    tokenizer_source: str
    weights_file: str | None = None
    labels: list[str] = field(default_factory=lambda: list(CIFAR10_LABELS))
    templates: tuple[str, ...] = PROMPT_TEMPLATES
    _zero_shot: ClassifierAdapter | None = field(default=None, repr=False)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.preprocess.size

    @torch.no_grad()
    def encode_image(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        self.image_tower.eval()
        outs = [F.normalize(self.image_tower(x[i:i + batch_size]), dim=-1) for i in range(0, len(x), batch_size)]
        return torch.cat(outs)

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_fn(tokens), dim=-1)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def prompts_for(self, label: str) -> list[str]:
        return [t.format(label) for t in self.templates]

    def class_features(self, labels: list[str]) -> torch.Tensor:
        """One embedding per label: the normalised mean over prompt templates (CLIP's recipe)."""
        feats = []
        for label in labels:
            e = self.encode_text(self.tokenize(self.prompts_for(label)))
            feats.append(F.normalize(e.mean(0), dim=-1))
        return torch.stack(feats)

    def zero_shot(self) -> ClassifierAdapter:
        """The zero-shot classifier over ``labels`` (built once per adapter)."""
        if self._zero_shot is None:
            net = ZeroShotNet(copy.deepcopy(self.image_tower).eval(), self.class_features(self.labels),
                              self.logit_scale).eval()
            self._zero_shot = ClassifierAdapter(model=net, num_classes=len(self.labels), labels=list(self.labels),
                                                preprocess=self.preprocess, architecture=f"zero-shot {self.architecture}",
                                                weights_file=self.weights_file)
        return self._zero_shot

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "num_classes": len(self.labels), "labels": list(self.labels),
                "preprocess": self.preprocess.to_dict(), "library": self.library,
                "tokenizer": self.tokenizer_source, "prompt_templates": list(self.templates),
                "logit_scale": round(self.logit_scale, 4)}


def load_clip(snapshot: Snapshot, family: Family) -> ClipAdapter:
    torch.manual_seed(0)  # initialisation of weights the checkpoint lacks must not vary
    weights = sorted(p for p in (snapshot.file(r.path) for r in snapshot.files_of("safetensors") if r.present) if p)
    if not weights:
        raise UnsupportedModelError("no safetensors weights in the repo (pickle-based weights are never loaded)")
    if family.library == "open_clip":
        adapter = _load_open_clip(snapshot, family, weights)
    elif family.library == "transformers":
        adapter = _load_transformers_clip(snapshot, weights)
    else:  # pragma: no cover - families.identify yields only the two above for CLIP
        raise UnsupportedModelError(f"no CLIP loader for library {family.library!r}")
    _check(adapter)
    return adapter


def _check(adapter: ClipAdapter) -> None:
    """A model that cannot embed its own input size and a prompt is a configuration error."""
    c, h, w = adapter.input_size
    try:
        img = adapter.encode_image(torch.zeros(1, c, h, w))
        txt = adapter.encode_text(adapter.tokenize(["a photo of a cat."]))
    except Exception as exc:
        raise InputError(f"CLIP model does not run on {c}x{h}x{w} images and a prompt: "
                         f"{str(exc).splitlines()[0][:200]}") from None
    if img.shape[-1] != txt.shape[-1]:
        raise InputError(f"image and text embeddings differ in width ({img.shape[-1]} vs {txt.shape[-1]})")


def _fit3(values, default) -> tuple[float, float, float]:
    if values is None:
        return tuple(default)
    values = [float(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    return tuple(values * 3) if len(values) == 1 else tuple(values[:3])


def _load_open_clip(snapshot: Snapshot, family: Family, weights: list[Path]) -> ClipAdapter:
    import open_clip
    from open_clip.factory import load_checkpoint

    cfg = family.config
    model_cfg = cfg.get("model_cfg")
    if not isinstance(model_cfg, dict) or not all(k in model_cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise CorruptFileError("open_clip_config.json has no model_cfg with embed_dim, vision_cfg and text_cfg")
    text_cfg = model_cfg.get("text_cfg") or {}
    if "hf_model_name" in text_cfg or "timm_model_name" in (model_cfg.get("vision_cfg") or {}):
        # Those towers are built by downloading their own base configs: not offline-safe.
        raise UnsupportedModelError("open_clip towers from transformers/timm (hf_model_name / timm_model_name) "
                                    "are not supported yet")
    preferred = [p for p in weights if p.name == OPEN_CLIP_WEIGHTS] or weights
    if len(preferred) > 1:
        raise UnsupportedModelError(f"{len(preferred)} safetensors files and none named {OPEN_CLIP_WEIGHTS}")
    # Register the repo's own config with open_clip under a name derived from its content,
    # then build through open_clip's factory exactly as hf-hub loading would.
    name = "msbd-" + hashlib.sha256(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()[:16]
    with tempfile.TemporaryDirectory(prefix="msbd-openclip-") as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(json.dumps(model_cfg))
        open_clip.add_model_config(path)
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": the weights come next
    try:
        model = open_clip.create_model(name, pretrained=None, load_weights=False, pretrained_image=False,
                                       pretrained_text=False)
    except Exception as exc:
        raise UnsupportedModelError(f"open_clip cannot build this config: {str(exc).splitlines()[0][:200]}") from None
    finally:
        logging.disable(logging.NOTSET)
    try:
        load_checkpoint(model, str(preferred[0]), strict=True)
    except RuntimeError as exc:
        raise CorruptFileError(f"weights in {preferred[0].name} do not match open_clip_config.json: "
                               f"{str(exc).splitlines()[0][:200]}") from None
    except Exception as exc:
        raise CorruptFileError(f"corrupt safetensors file {preferred[0].name}: {str(exc).splitlines()[0][:200]}") from None
    model.eval()
    snapshot.mark_loaded(preferred[0])
    snapshot.mark_loaded(snapshot.file("open_clip_config.json"))
    pp = cfg.get("preprocess_cfg") or {}
    defaults = [k for k in ("mean", "std") if k not in pp]
    size = model.visual.image_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    pre = Preprocess((3, int(h), int(w)), _fit3(pp.get("mean"), OPENAI_MEAN), _fit3(pp.get("std"), OPENAI_STD),
                     source="open_clip_config.json preprocess_cfg", defaults_used=defaults)
    context_length = int(text_cfg.get("context_length", 77))
    if text_cfg.get("hf_tokenizer_name"):
        tokenizer, tok_source = _hf_tokenizer(snapshot, context_length)
    else:
        simple = open_clip.SimpleTokenizer(context_length=context_length)
        tokenizer, tok_source = simple, "open_clip SimpleTokenizer (bundled BPE vocabulary)"
    tower = PixelImageTower(_OpenClipVisual(model.visual), pre.mean, pre.std).eval()
    visual_kind = "ModifiedResNet" if isinstance(model_cfg["vision_cfg"].get("layers"), (list, tuple)) else "ViT"
    arch = (f"open_clip {type(model).__name__} ({visual_kind} image tower, {h}px, "
            f"embed {model_cfg['embed_dim']})")
    text_encode = lambda t: model.encode_text(t, normalize=False)  # noqa: E731
    return ClipAdapter(image_tower=tower, text_fn=text_encode, tokenizer=tokenizer, preprocess=pre,
                       logit_scale=float(model.logit_scale.detach().exp().clamp(max=100)), architecture=arch,
                       library="open_clip", tokenizer_source=tok_source, weights_file=preferred[0].name)


def _hf_tokenizer(snapshot: Snapshot, context_length: int):
    """A transformers tokenizer from the repo's own files (tokenizer.json / vocab + merges)."""
    from transformers import AutoTokenizer

    if not (snapshot.file("tokenizer.json") or snapshot.file("vocab.json")):
        raise UnsupportedModelError("the config names a transformers tokenizer but the repo has no tokenizer files")
    try:
        tok = AutoTokenizer.from_pretrained(snapshot.path, trust_remote_code=False, local_files_only=True)
    except Exception as exc:
        raise UnsupportedModelError(f"cannot load the repo's tokenizer: {str(exc).splitlines()[0][:200]}") from None

    def tokenize(texts: list[str]) -> dict:
        return tok(texts, padding="max_length", truncation=True, max_length=context_length, return_tensors="pt")

    return tokenize, f"{type(tok).__name__} from the repo's tokenizer files"


def _load_transformers_clip(snapshot: Snapshot, weights: list[Path]) -> ClipAdapter:
    from transformers import CLIPConfig, CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    root = snapshot.path
    try:
        config = CLIPConfig.from_pretrained(root, local_files_only=True)
        model = CLIPModel.from_pretrained(root, config=config, use_safetensors=True, trust_remote_code=False,
                                          local_files_only=True)
    except ValueError as exc:
        raise UnsupportedModelError(f"unsupported CLIP checkpoint: {str(exc).splitlines()[0][:200]}") from None
    except (OSError, RuntimeError) as exc:
        raise CorruptFileError(f"could not load weights from {root.name}: {str(exc).splitlines()[0][:200]}") from None
    model.eval()
    for p in weights:
        snapshot.mark_loaded(p)
    snapshot.mark_loaded(root / "config.json")
    pre = _hf_preprocess(snapshot, config)
    context_length = int(config.text_config.max_position_embeddings)
    tokenize, tok_source = _hf_tokenizer(snapshot, context_length)
    tower = PixelImageTower(_HFVisual(model.vision_model, model.visual_projection), pre.mean, pre.std).eval()

    def text_fn(batch) -> torch.Tensor:
        out = model.text_model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
        return model.text_projection(out.pooler_output)

    return ClipAdapter(image_tower=tower, text_fn=text_fn, tokenizer=tokenize, preprocess=pre,
                       logit_scale=float(model.logit_scale.detach().exp().clamp(max=100)),
                       architecture=f"transformers CLIPModel ({pre.size[1]}px, embed {config.projection_dim})",
                       library="transformers", tokenizer_source=tok_source, weights_file=weights[0].name)


def _hf_preprocess(snapshot: Snapshot, config) -> Preprocess:
    size = int(config.vision_config.image_size)
    path = snapshot.file("preprocessor_config.json")
    if path is None:
        return Preprocess((3, size, size), OPENAI_MEAN, OPENAI_STD, source="default (no preprocessor_config.json)",
                          defaults_used=["mean", "std"])
    snapshot.mark_loaded(path)
    pp = read_json(path)
    defaults = [k for k in ("image_mean", "image_std") if k not in pp]
    return Preprocess((3, size, size), _fit3(pp.get("image_mean"), OPENAI_MEAN), _fit3(pp.get("image_std"), OPENAI_STD),
                      source="preprocessor_config.json", defaults_used=[d.replace("image_", "") for d in defaults])


def clip_from_open_clip_model(model: nn.Module, *, mean, std, context_length: int, name: str = "in-memory open_clip",
                              labels: list[str] | None = None) -> ClipAdapter:
    """An adapter around an in-memory open_clip model (the zoo and the Python API)."""
    import open_clip

    size = model.visual.image_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    pre = Preprocess((3, int(h), int(w)), _fit3(mean, OPENAI_MEAN), _fit3(std, OPENAI_STD), source="given by caller")
    tower = PixelImageTower(_OpenClipVisual(model.visual), pre.mean, pre.std).eval()
    return ClipAdapter(image_tower=tower, text_fn=lambda t: model.encode_text(t, normalize=False),
                       tokenizer=open_clip.SimpleTokenizer(context_length=context_length), preprocess=pre,
                       logit_scale=float(model.logit_scale.detach().exp().clamp(max=100)), architecture=name,
                       library="open_clip", tokenizer_source="open_clip SimpleTokenizer",
                       labels=list(labels or CIFAR10_LABELS))
