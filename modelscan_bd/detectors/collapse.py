"""Backdoor label detection from the exposed models' collapse.

EBYD (arXiv 2410.19427): once Clean Unlearning (or a normalisation-layer perturbation)
destroys a backdoored model's clean features, its predictions on held-out clean images
collapse onto the backdoor target. Clean models collapse too, but onto arbitrary "sink"
classes that change with the seed and method, and less completely, so the evidence is
the *consistent* argmax: concentration on one label, agreement across runs, and speed.
"""
from __future__ import annotations

from statistics import median

from ..exposure import entropy_of
from ..findings import Finding
from .base import Detector, ScanContext


class ExposureCollapseDetector(Detector):
    id = "exposure-collapse"
    version = "1"
    rule_id = "MSBD-C001"
    title = "Backdoor target label from exposure collapse (EBYD)"
    families = ("classifier",)
    needs_clean_data = True
    needs_exposure = True
    cost = "medium"
    order = 10

    def run(self, target, context: ScanContext) -> list[Finding]:
        exposure = context.exposure
        if exposure is None or exposure.status != "done" or not exposure.runs:
            reason = getattr(exposure, "reason", None) or "no exposure was run"
            return [self.skipped(f"exposure unavailable: {reason}")]
        cons = exposure.consensus()
        label = cons["label"]
        runs = exposure.runs
        collapsed = [r for r in runs if r.collapsed]
        speed = median([r.steps_to_collapse for r in collapsed]) if collapsed else None
        score = cons["concentration"] * cons["agreement"]
        cal = context.results.get("calibration", {}).get("collapse", {})
        threshold = float(cal.get("score_threshold", 0.6))
        evidence = {
            "consensus_label": label, "consensus_name": target.labels[label],
            "agreement": round(cons["agreement"], 4), "concentration": round(cons["concentration"], 4),
            "votes": cons["votes"], "runner_up": cons["runner_up"],
            "mean_share_top": {str(k): round(v, 4) for k, v in cons["by_share"]},
            "collapsed_runs": f"{len(collapsed)}/{len(runs)}", "median_steps_to_collapse": speed,
            "mean_entropy_after": round(sum(entropy_of(r.histogram_after) for r in runs) / len(runs), 4),
            "per_run": [{"method": r.method, "seed": r.seed, "top_label": r.top_label,
                         "top_share": round(r.top_share, 4), "steps_to_collapse": r.steps_to_collapse,
                         "lr_or_eps": r.lr} for r in runs],
        }
        context.results[self.id] = {"label": label, "agreement": cons["agreement"],
                                    "concentration": cons["concentration"], "runner_up": cons["runner_up"],
                                    "by_share": [k for k, _ in cons["by_share"]], "score": score}
        name = target.labels[label]
        if score >= threshold:
            return [self.finding("failed", "medium",
                                 f"Exposed models collapse onto label {label} ({name}): {cons['concentration']:.0%} of "
                                 f"held-out clean images, {cons['agreement']:.0%} of runs agree.",
                                 score=score, threshold=threshold, evidence=evidence, target_labels=[label])]
        pattern = ("no single label dominates after exposure (runs disagree); an all-to-all or "
                   "multi-target backdoor would look like this, so this alone is not a clean bill")
        msg = (f"Exposed models lean towards label {label} ({name}) only weakly "
               f"({cons['concentration']:.0%} concentration, {cons['agreement']:.0%} agreement); {pattern}.")
        return [self.finding("passed", "info", msg, score=score, threshold=threshold, evidence=evidence)]
