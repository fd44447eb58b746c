"""Adapters: one uniform interface per model family.

Detectors see only these interfaces, never transformers/timm/diffusers classes.
"""
from .classifier import ClassifierAdapter, PixelClassifier, Preprocess

__all__ = ["ClassifierAdapter", "PixelClassifier", "Preprocess"]
