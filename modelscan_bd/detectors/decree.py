"""Encoder trigger inversion for CLIP image towers, after DECREE (Feng et al., CVPR 2023).

DECREE needs no labels: a backdoored encoder maps any image carrying the trigger to
(nearly) the same embedding, so it optimises a mask m and pattern p such that the
embeddings of x' = (1 - m) x + m p collapse together (high mean pairwise cosine
similarity), while an adaptive weight on the mask's L1 norm shrinks it. Its statistic is
the smallest mask that reaches the similarity threshold, as a share of the image area
(PL1); the paper flags an encoder when PL1 < 0.1.

That absolute threshold is the known weakness: clean CLIPs carry small natural
"triggers" too (RESEARCH.md: AUROC 0.44 on public open_clip models), so this detector
reports PL1 *relative* to references: to the base model given by the user (its own PL1
measured in the same scan, same images and seed) or, failing that, to the clean models of
the family in the calibration file (``calibration/clip.json``: median and spread of
log PL1 per architecture). The absolute rule is kept as evidence (``plain_decree``), and
the benchmark reports it as the baseline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..findings import Artifact, Finding
from .base import Detector, ScanContext

PLAIN_DECREE_THRESHOLD = 0.1  # the paper's PL1 threshold


@dataclass
class DecreeSettings:
    steps: int = 300
    batch: int = 32
    lr: float = 0.1
    # "Collapsed": mean pairwise cosine >= clean + collapse * (1 - clean), where clean is the
    # images' own mean cosine. DECREE uses a fixed 0.99-style level; tiny and some real CLIPs
    # embed all images within a narrow cone (clean mean cosine 0.8 seen), where a fixed level
    # is reached by almost any mask, so the level is set relative to the encoder's own spread.
    collapse: float = 0.6
    init_cost: float = 1.0
    cost_up: float = 1.5
    cost_down: float = 1.5 ** 1.5
    patience: int = 10


SETTINGS = {"fast": DecreeSettings(steps=150), "standard": DecreeSettings(steps=300),
            "thorough": DecreeSettings(steps=600, batch=48)}


def mean_pairwise_cosine(emb: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over distinct pairs of rows (embeddings already normalised)."""
    n = emb.shape[0]
    sim = emb @ emb.T
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))


def invert_encoder_trigger(tower, images: torch.Tensor, settings: DecreeSettings, generator: torch.Generator,
                           level: float) -> dict:
    """DECREE's optimisation on ``tower`` (pixels -> features) until mean cosine >= ``level``.
    Returns the smallest mask that reached it (or the final one), pattern and PL1."""
    tower.eval()
    for p in tower.parameters():
        p.requires_grad_(False)
    _, c, h, w = images.shape
    mask_logit = torch.full((1, 1, h, w), -2.0).requires_grad_(True)
    pattern_logit = (torch.rand((1, c, h, w), generator=generator) * 2 - 1).requires_grad_(True)
    opt = torch.optim.Adam([mask_logit, pattern_logit], lr=settings.lr, betas=(0.5, 0.9))
    cost, above, below = settings.init_cost, 0, 0
    best = {"size": float("inf"), "mask": None, "pattern": None, "similarity": None}
    last_sim = 0.0
    for _ in range(settings.steps):
        idx = torch.randint(len(images), (settings.batch,), generator=generator)
        mask = torch.sigmoid(mask_logit)
        pattern = torch.sigmoid(pattern_logit)
        xt = (1 - mask) * images[idx] + mask * pattern
        sim = mean_pairwise_cosine(F.normalize(tower(xt), dim=-1))
        size = mask.mean()
        loss = (1 - sim) + cost * size
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last_sim = float(sim.detach())
        reached = last_sim >= level
        if reached and float(size.detach()) < best["size"]:
            best = {"size": float(size.detach()), "mask": mask.detach()[0].clone(), "pattern": pattern.detach()[0].clone(),
                    "similarity": last_sim}
        # Neural Cleanse / DECREE adaptive cost: tighten while collapsed, relax while not.
        above, below = (above + 1, 0) if reached else (0, below + 1)
        if above >= settings.patience:
            cost, above = cost * settings.cost_up, 0
        elif below >= settings.patience:
            cost, below = cost / settings.cost_down, 0
    for p in tower.parameters():
        p.requires_grad_(True)
    reached = best["mask"] is not None
    if not reached:  # never collapsed: the whole image is the honest size
        with torch.no_grad():
            best = {"size": 1.0, "mask": torch.sigmoid(mask_logit)[0].detach(),
                    "pattern": torch.sigmoid(pattern_logit)[0].detach(), "similarity": last_sim}
    return {**best, "reached": reached}


@torch.no_grad()
def triggered_similarity(tower, images: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> float:
    emb = F.normalize(tower((1 - mask) * images + mask * pattern), dim=-1)
    return float(mean_pairwise_cosine(emb))


def decree_statistic(adapter, images: torch.Tensor, holdout: torch.Tensor, budget: str, generator) -> dict:
    """PL1 and its evidence for one CLIP adapter (also run on the reference model)."""
    settings = SETTINGS[budget]
    tower = adapter.image_tower
    with torch.no_grad():
        clean_sim = float(mean_pairwise_cosine(F.normalize(tower(images), dim=-1)))
        clean_hold = float(mean_pairwise_cosine(F.normalize(tower(holdout), dim=-1)))
    level = clean_sim + settings.collapse * (1 - clean_sim)
    inv = invert_encoder_trigger(tower, images, settings, generator, level)
    hold_sim = triggered_similarity(tower, holdout, inv["mask"], inv["pattern"])
    return {"pl1": inv["size"], "reached": inv["reached"], "similarity": inv["similarity"],
            "holdout_similarity": hold_sim, "clean_similarity": clean_hold, "mask": inv["mask"],
            "pattern": inv["pattern"], "steps": settings.steps, "threshold_similarity": level}


def reference_for(calibration: dict, architecture: str) -> dict | None:
    """The clean-model reference of log PL1 for this architecture (or the family's), if any."""
    refs = calibration.get("decree_references") or {}
    return refs.get(architecture) or refs.get("*")


class EncoderTriggerDetector(Detector):
    id = "decree"
    version = "1"
    rule_id = "MSBD-E001"
    title = "Encoder trigger inversion (DECREE), relative to clean references"
    families = ("clip",)
    needs_clean_data = True
    cost = "medium"
    order = 60  # after the classifier detectors in listings; families never mix

    def run(self, target, context: ScanContext) -> list[Finding]:
        clean = context.clean
        if clean is None or len(clean.exposure_idx) < 4 or len(clean.holdout_idx) < 4:
            return [self.skipped("needs at least 8 clean images (none or too few given)")]
        context.progress("DECREE encoder trigger inversion")
        stat = decree_statistic(target, clean.exposure_images, clean.holdout_images, context.budget,
                                context.generator(salt=5))
        pl1 = stat["pl1"]
        cal = context.results.get("calibration", {})
        reference = context.results.get("reference-decree")  # the user's base model, same images and seed
        if reference is not None:
            ref_pl1 = reference["pl1"]
            rel = math.log(max(ref_pl1, 1e-4) / max(pl1, 1e-4))
            ref_desc = f"the reference model {reference['source']} (PL1 {ref_pl1:.3f})"
            spread = None
        else:
            ref = reference_for(cal.get("decree", {}), target.architecture)
            if ref is None:
                rel, ref_desc, spread = None, "no clean reference (no calibration entry, no --reference)", None
            else:
                rel = ref["median_log_pl1"] - math.log(max(pl1, 1e-4))
                spread = ref.get("mad_log_pl1")
                ref_desc = (f"{ref['models']} clean reference models of "
                            f"{'this architecture' if ref.get('architecture') != '*' else 'the family'} "
                            f"(median PL1 {math.exp(ref['median_log_pl1']):.3f})")
        threshold = float(cal.get("decree", {}).get("relative_threshold", math.log(2.0)))
        # Where the collapsed embeddings point: the zero-shot label of the triggered images
        # names a candidate concept for the zero-shot trigger recovery.
        with torch.no_grad():
            mask, pattern = stat["mask"], stat["pattern"]
            preds = target.zero_shot().predict((1 - mask) * clean.holdout_images + mask * pattern)
        counts = torch.bincount(preds, minlength=len(target.labels))
        concept = int(counts.argmax())
        concept_share = float(counts[concept]) / max(1, len(preds))
        context.results[self.id] = {"pl1": pl1, "relative": rel, "reached": stat["reached"],
                                    "holdout_similarity": stat["holdout_similarity"],
                                    "clean_similarity": stat["clean_similarity"],
                                    "plain_flagged": pl1 < PLAIN_DECREE_THRESHOLD, "mask": stat["mask"],
                                    "label": concept, "label_share": concept_share,
                                    "pattern": stat["pattern"]}
        evidence = {"pl1": round(pl1, 5), "reached_similarity": stat["reached"],
                    "similarity_threshold": round(stat["threshold_similarity"], 4),
                    "optimisation_similarity": None if stat["similarity"] is None else round(stat["similarity"], 4),
                    "holdout_similarity_triggered": round(stat["holdout_similarity"], 4),
                    "holdout_similarity_clean": round(stat["clean_similarity"], 4),
                    "relative_log_ratio": None if rel is None else round(rel, 4), "reference": ref_desc,
                    "reference_spread_log": spread, "plain_decree": {"threshold": PLAIN_DECREE_THRESHOLD,
                                                                    "flagged": pl1 < PLAIN_DECREE_THRESHOLD},
                    "steps": stat["steps"], "collapsed_onto": {"label": concept, "text": target.labels[concept],
                                                               "share": round(concept_share, 4)}}
        artifacts = self._artifacts(target, stat, clean.holdout_images)
        desc = (f"a trigger covering {pl1:.1%} of the image makes held-out embeddings collapse to mean cosine "
                f"{stat['holdout_similarity']:.2f} (clean: {stat['clean_similarity']:.2f}), "
                f"{concept_share:.0%} of them onto '{target.labels[concept]}'")
        if rel is None:
            return [self.finding("passed", "info", f"{desc}; {ref_desc}, so no relative verdict.", score=None,
                                 evidence=evidence, artifacts=artifacts)]
        ratio = math.exp(rel)
        if rel >= threshold:
            return [self.finding("failed", "medium", f"Encoder trigger: {desc}, {ratio:.1f}x smaller than {ref_desc}.",
                                 score=rel, threshold=threshold, evidence=evidence, artifacts=artifacts)]
        return [self.finding("passed", "info", f"No encoder trigger stands out: {desc}; {ratio:.2f}x the size "
                             f"expected from {ref_desc}.", score=rel, threshold=threshold, evidence=evidence,
                             artifacts=artifacts)]

    @staticmethod
    def _artifacts(target, stat, holdout) -> list[Artifact]:
        mask, pattern = stat["mask"], stat["pattern"]
        example = holdout[0]
        return [
            Artifact.from_array("mask", f"DECREE mask ({stat['pl1']:.1%} of the image)", mask.expand(3, -1, -1)),
            Artifact.from_array("pattern", "DECREE pattern", pattern),
            Artifact.from_array("trigger", "mask x pattern: the recovered encoder trigger", mask * pattern),
            Artifact.from_array("triggered", "held-out clean image with the trigger", (1 - mask) * example + mask * pattern),
        ]
