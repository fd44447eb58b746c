"""Small image classifiers defined purely by transformers configs.

The zoo saves models exactly as Hub repos are saved, so every architecture here must
load back with ``AutoModelForImageClassification.from_config`` and a safetensors file,
with no custom code. Sizes are chosen so that one epoch over 10k 32x32 images takes a
few seconds on two CPU cores.
"""
from __future__ import annotations

from collections.abc import Sequence

from transformers import (PreTrainedModel, ResNetConfig, ResNetForImageClassification,
                          ViTConfig, ViTForImageClassification)

ARCHITECTURES = ("resnet", "vit")


def _label_maps(num_classes: int, labels: Sequence[str] | None) -> tuple[dict[int, str], dict[str, int]]:
    names = list(labels) if labels is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} labels given for {num_classes} classes")
    return dict(enumerate(names)), {name: i for i, name in enumerate(names)}


def tiny_resnet(num_classes: int, labels: Sequence[str] | None = None,
                channels: int = 3) -> ResNetForImageClassification:
    """A three-stage basic-block ResNet (about 0.3 M parameters)."""
    id2label, label2id = _label_maps(num_classes, labels)
    config = ResNetConfig(num_channels=channels, embedding_size=32, hidden_sizes=[32, 64, 128],
                          depths=[1, 1, 1], layer_type="basic", num_labels=num_classes,
                          id2label=id2label, label2id=label2id)
    return ResNetForImageClassification(config)


def tiny_vit(num_classes: int, labels: Sequence[str] | None = None, image_size: int = 32,
             channels: int = 3) -> ViTForImageClassification:
    """A 3-layer ViT with 4x4 patches and width 64 (about 0.1 M parameters)."""
    id2label, label2id = _label_maps(num_classes, labels)
    config = ViTConfig(image_size=image_size, patch_size=4, num_channels=channels, hidden_size=64,
                       num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                       num_labels=num_classes, id2label=id2label, label2id=label2id)
    return ViTForImageClassification(config)


def build_model(arch: str, num_classes: int, labels: Sequence[str] | None = None,
                image_size: int = 32, channels: int = 3) -> PreTrainedModel:
    """The named architecture ("resnet" or "vit"), freshly initialised."""
    if arch == "resnet":
        return tiny_resnet(num_classes, labels, channels)
    if arch == "vit":
        return tiny_vit(num_classes, labels, image_size, channels)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
