"""Would the combiner do better fitted on every committed ten-class zoo than on v4 + v5 alone? Leave one zoo out:
each zoo's models (v4 and v5, the shipped weights' own zoos, apart) judged by a combiner fitted on the other zoos'
models (and the three clean-reference cuts fitted on their ordinary clean models, as shipped: exponential tail,
alpha 1 %/3), against the shipped weights with the same leave-one-out references. Also: the signal features taken out of the combiner and judged as one-class clean
references instead, and a combiner-free rule (the smallest clean-tail chance over six features).

    PYTHONPATH=. python docs/bench/combiner-pool/lozo_combiner.py > docs/bench/combiner-pool/lozo_combiner.txt
"""
import collections
import copy
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reference-tails"))
from rows import group, load_rows  # noqa: E402

from modelscan_bd.bench import auroc, tpr_at_fpr  # noqa: E402
from modelscan_bd.verdict import (REFERENCE_ALPHA, REFERENCES, fit_logistic, fit_references,  # noqa: E402
                                  load_calibration, probability, tail_cut)

ARCH = "ResNetForImageClassification"
FITTING_ZOOS = {"cifar10-v4", "cifar10-v5"}  # the shipped weights' own zoos: never judged, always fittable
FRESH = {"cifar10-heldout-s2750", "cifar10-heldout-s2760", "cifar10-mix-s2810"}


def report(label: str, out: list[tuple[dict, float]], cut: float) -> None:
    s, y = [p for _, p in out], [int(r["backdoored"]) for r, _ in out]
    so, yo = [p for r, p in out if not r["hard"]], [int(r["backdoored"]) for r, _ in out if not r["hard"]]
    fresh = [(r, p) for r, p in out if r["zoo"] in FRESH]
    flagged = collections.defaultdict(lambda: [0, 0])
    for r, p in out:
        flagged[group(r)][0] += p >= cut
        flagged[group(r)][1] += 1
    print(f"\n{label}\n  AUROC {auroc(s, y):.3f}, TPR@5%FPR {tpr_at_fpr(s, y):.3f}; without the hard clean models "
          f"{auroc(so, yo):.3f}, {tpr_at_fpr(so, yo):.3f}; the three fresh zoos "
          f"{auroc([p for _, p in fresh], [int(r['backdoored']) for r, _ in fresh]):.3f}")
    print("  flagged: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(flagged.items())))
    neg = [p for r, p in out if not r["backdoored"]]
    fams = sorted({r["attack"] for r, _ in out if r["backdoored"]})
    print("  AUROC per attack against every clean model: " + ", ".join(
        f"{a} {auroc([p for r, p in out if r['attack'] == a] + neg, [1] * sum(r['attack'] == a for r, _ in out) + [0] * len(neg)):.3f}"
        for a in fams))


def combiner_lozo(rows, shipped, features, references, alpha, refit=True):
    """[(row, p)]: every zoo judged by a combiner (refitted on the other zoos, or the shipped weights) and
    clean-reference tests fitted on the other zoos' ordinary clean models."""
    out = []
    for zoo in sorted({r["zoo"] for r in rows} - FITTING_ZOOS):
        fit = [r for r in rows if r["zoo"] != zoo]
        ref = [r["features"] for r in fit if group(r) == "clean"]
        cal = copy.deepcopy(shipped)
        cal.references = fit_references(ref, [0] * len(ref), references, 3.0, alpha)
        if refit:
            mean, scale, w, b, fill = fit_logistic([r["features"] for r in fit], [int(r["backdoored"]) for r in fit],
                                                   features)
            cal.features, cal.mean, cal.scale, cal.weights, cal.bias, cal.fill = list(features), mean, scale, w, b, fill
        out += [(r, probability(r["features"], cal, 10, ARCH)[0]) for r in rows if r["zoo"] == zoo]
    return out


def min_chance_lozo(rows, features):
    """[(row, -log10(k x the smallest clean-tail chance))]: each feature's chance for a clean model under the
    other zoos' ordinary clean models (rank below the 80th percentile, the exponential tail above it)."""
    out = []
    for zoo in sorted({r["zoo"] for r in rows} - FITTING_ZOOS):
        clean = [r["features"] for r in rows if r["zoo"] != zoo and group(r) == "clean"]
        refs = {}
        for f in features:
            vals = sorted(v[f] for v in clean if v.get(f) is not None)
            if len(vals) >= 20:
                refs[f] = (vals, tail_cut(vals, 0.01))
        for r in rows:
            if r["zoo"] != zoo:
                continue
            chances = []
            for f, (vals, t) in refs.items():
                v = r["features"].get(f)
                if v is None:
                    continue
                if t["beta"] > 0 and v > t["u"]:
                    chances.append(t["p_u"] * math.exp(-(v - t["u"]) / t["beta"]))
                else:
                    chances.append(max(sum(x >= v for x in vals), 1) / (len(vals) + 1))
            out.append((r, -math.log10(min(chances) * len(chances))))
    return out


def main():
    shipped = load_calibration(budget="standard")
    rows = load_rows()
    every = list(shipped.features)
    no_signal = [f for f in every if not f.startswith("signal")]
    print(f"{len(rows)} ten-class ResNet models of {len({r['zoo'] for r in rows})} zoos (the held-out zoos s2840-s2860 "
          f"apart); every zoo but v4 and v5 (the shipped weights' fitting zoos) judged with itself left out of every fit")
    cut = shipped.backdoored_threshold
    report("shipped weights (fitted on v4 + v5)", combiner_lozo(rows, shipped, every, REFERENCES, REFERENCE_ALPHA, False), cut)
    report("the same eight features refitted on the other zoos",
           combiner_lozo(rows, shipped, every, REFERENCES, REFERENCE_ALPHA), cut)
    report("refitted without the signal features", combiner_lozo(rows, shipped, no_signal, REFERENCES, REFERENCE_ALPHA), cut)
    refs = dict(REFERENCES, signal_success=1)
    report("refitted without the signal features, signal_success a clean-reference test (alpha 1 %/4)",
           combiner_lozo(rows, shipped, no_signal, refs, 0.01 / len(refs)), cut)
    six = ["trigger_log_ratio", "signal_success", "mmbd_neglog10_p", "warp_fragility", "feature_gap", "pair_score"]
    report("no combiner: the smallest clean-tail chance over six features, cut at 1 % (score 2)",
           min_chance_lozo(rows, six), 2.0)


if __name__ == "__main__":
    main()
