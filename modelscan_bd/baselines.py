"""Baselines the benchmark runs beside the scanner, in the same process and on the same
clean data, so differences in quality and time are measured, not quoted.

* Neural Cleanse (Wang et al., IEEE S&P 2019): a patch trigger inverted for *every*
  label on the unexposed model; anomaly index of the smallest mask
  |L1 - median| / (1.4826 * MAD), counting labels below the median; flag above 2.
* EBYD's variance test (arXiv 2410.19427, the repository's detection variant): after
  one Clean Unlearning run, the variance of the predicted-class shares on clean images;
  flag above 0.01.
"""
from __future__ import annotations

import time

import torch

from .adapters.classifier import ClassifierAdapter
from .detectors.base import CleanData
from .exposure import UNLEARN, BUDGET_SETTINGS, clean_unlearn, histogram
from .inversion import PATCH, Slot, anomaly_index, invert
from .detectors.trigger import SETTINGS as TRIGGER_SETTINGS

NC_THRESHOLD = 2.0
EBYD_VARIANCE_THRESHOLD = 0.01


def neural_cleanse(adapter: ClassifierAdapter, clean: CleanData, seed: int, budget: str) -> dict:
    start = time.perf_counter()
    settings, _ = TRIGGER_SETTINGS[budget]
    slots = [Slot(k, PATCH) for k in range(adapter.num_classes)]
    g = torch.Generator().manual_seed(seed)
    inverted = invert(adapter.model, clean.exposure_images, clean.exposure_labels, slots, settings, g)
    sizes = [t.effective_size() for t in inverted]
    index, smallest = anomaly_index(sizes)
    return {"score": index, "flagged": index > NC_THRESHOLD, "target": smallest, "sizes": sizes,
            "seconds": time.perf_counter() - start}


def ebyd_variance(adapter: ClassifierAdapter, clean: CleanData, seed: int, budget: str) -> dict:
    start = time.perf_counter()
    before = histogram(adapter.predict(clean.holdout_images), adapter.num_classes)
    settings = BUDGET_SETTINGS[budget]
    run = clean_unlearn(adapter, clean, seed * 100, settings, before)
    total = max(1, sum(run.histogram_after))
    shares = torch.tensor([h / total for h in run.histogram_after])
    variance = float(shares.var(unbiased=False))
    return {"score": variance, "flagged": variance > EBYD_VARIANCE_THRESHOLD, "target": run.top_label,
            "method": UNLEARN, "seconds": time.perf_counter() - start}
