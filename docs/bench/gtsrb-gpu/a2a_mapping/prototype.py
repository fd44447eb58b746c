"""Prototype, not shipped: does an untargeted trigger's *label map* reveal all-to-all backdoors?

An all-to-all trigger sends each source class to its own destination (y -> y+1 here): many
distinct destinations, each source consistent. A clean model's untargeted adversarial patch
sends images to a few natural sink labels; an all-to-one trigger sends them to one.

Per model: untargeted patch inversion (``modelscan_bd.inversion``, standard budget: 300 steps,
16 images per step) on the scanner's exposure split of the zoo's clean data, then on the
held-out split, over images the model classifies right and the trigger flips:
``n_dest`` = exp(entropy of the destination labels), ``purity`` = share of flips that go to
their source's commonest destination. Modes:

* ``mapping``: the scanner's untargeted slot as it is (one start, success bar 0.98), and the
  true trigger's map where the ground truth has one;
* ``diverse BETAS``: the same with a destination-diversity term added to the loss,
  beta * (log C - entropy of the batch's mean softmax), for each beta (comma separated);
* ``restarts``: three starts in one batch, success bar 0.9 (an all-to-all trigger at 86-88 %
  attack success never flips 98 % of a batch).

Usage: ``python prototype.py MODE [BETAS] ZOO...`` (one JSON line per model).
"""
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import modelscan_bd.inversion as inv
from modelscan_bd.adapters.load_classifier import load_classifier
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.detectors.label_map import map_statistics
from modelscan_bd.families import identify
from modelscan_bd.sources import resolve
from modelscan_bd.zoo.save import load_attack

STANDARD = {"steps": 300, "images_per_slot": 16}


def mapping_stats(model, x, y, apply):
    """Flip rate, effective destination count and per-source purity of a trigger on (x, y): images the
    model classifies right (see ``correct``). The statistics are the shipped detector's
    (``label_map.map_statistics``), rounded as the prototype recorded them."""
    with torch.no_grad():
        pred = model(apply(x)).argmax(1)
    flip = pred != y
    stats = map_statistics(y[flip], pred[flip])
    return {"flip": round(float(flip.float().mean()), 3), "n_dest": round(stats["n_dest"], 2),
            "purity": round(stats["purity"], 3), "n_src": stats["n_src"]}


def correct(model, x, y):
    """The images (and labels) the model classifies right without a trigger."""
    with torch.no_grad():
        keep = model(x).argmax(1) == y
    return x[keep], y[keep]


def diverse_loss(beta, plain):
    """``plain`` (the inversion's own slot loss) with the destination-diversity term on untargeted slots."""
    def loss(logits, y, target):
        value, hit = plain(logits, y, target)
        if target == inv.UNTARGETED and beta > 0:
            mean_p = F.softmax(logits, dim=1).mean(0)
            entropy = -(mean_p * mean_p.clamp_min(1e-12).log()).sum()
            value = value + beta * (math.log(logits.shape[1]) - entropy)
        return value, hit
    return loss


def untargeted(model, xe, ye, starts=1, **settings):
    slots = [inv.Slot(inv.UNTARGETED, inv.PATCH)] * starts
    return inv.invert(model, xe, ye, slots, inv.InversionSettings(**STANDARD, **settings),
                      torch.Generator().manual_seed(0))


def scan_model(mode, betas, zoo, entry):
    snap = resolve(str(zoo / entry["path"]))
    adapter = load_classifier(snap, identify(snap))
    clean = load_clean_data(zoo / "clean-data.npz", adapter)
    xe, ye = clean.images[clean.exposure_idx], clean.labels[clean.exposure_idx]
    xh, yh = clean.images[clean.holdout_idx], clean.labels[clean.holdout_idx]
    model = adapter.model
    xh, yh = correct(model, xh, yh)  # once per model: every map is read on these
    row = {"zoo": zoo.name, "name": entry["name"], "asr": entry.get("asr")}
    if mode == "mapping":
        (trig,) = untargeted(model, xe, ye)
        row.update(size=round(trig.effective_size(), 4), reached=trig.reached,
                   inv=mapping_stats(model, xh, yh, trig.apply))
        attack = load_attack(zoo / entry["truth_dir"])
        if attack is not None:
            row["true"] = mapping_stats(model, xh, yh, attack.apply_trigger)
    elif mode == "diverse":
        plain = inv._slot_loss
        try:
            for beta in betas:
                inv._slot_loss = diverse_loss(beta, plain)
                (trig,) = untargeted(model, xe, ye)
                row[f"b{beta:g}"] = {"size": round(trig.effective_size(), 4),
                                     **mapping_stats(model, xh, yh, trig.apply)}
        finally:
            inv._slot_loss = plain
    else:
        for i, trig in enumerate(untargeted(model, xe, ye, starts=3, success=0.9)):
            row[f"r{i}"] = {"size": round(trig.effective_size(), 4), **mapping_stats(model, xh, yh, trig.apply)}
    return row


def main(argv):
    mode, rest = argv[0], argv[1:]
    betas = [float(b) for b in rest.pop(0).split(",")] if mode == "diverse" else []
    torch.set_num_threads(2)
    for zoo in map(Path, rest):
        for entry in json.loads((zoo / "manifest.json").read_text())["models"]:
            start = time.perf_counter()
            row = scan_model(mode, betas, zoo, entry)
            row["seconds"] = round(time.perf_counter() - start, 1)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
