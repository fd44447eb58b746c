"""Variant H: the shipped standard calibration with its (<20-class) combiner refitted on the same
41-model CIFAR-10 fitting split, the same other-recipe clean models for the BACKDOORED cut, less the
feature trigger_holdout_success. References, detector thresholds and the 20+-class entries are kept.

Run from the repository root:
    python docs/bench/cifar10-blind/variant_h.py --write OUT.json       # the calibration file
    python docs/bench/cifar10-blind/variant_h.py NAME=results.json ...  # shipped vs H on bench records
"""
import json
import sys
from dataclasses import asdict

from modelscan_bd.bench import auroc, model_probability, reported_target, split, tpr_at_fpr
from modelscan_bd.verdict import FEATURES, fit_calibration, load_calibration

D = 'docs/bench/'
FIT_ZOO = D + 'cifar10/results.json'
HOLDOUT_SEEDS = [14, 15, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29]  # the shipped fit's split (README)
OTHER = [D + 'cifar10-wanet-pilot/results-seed300.json', D + 'cifar10-wanet-pilot/results-clean40-seed303.json',
         D + 'cifar10-warp/bench-seed300.json', D + 'cifar10-warp/bench-seed301.json',
         D + 'cifar10-warp/bench-seed302.json']
COMBINER = ('features', 'mean', 'scale', 'weights', 'bias', 'fill', 'backdoored_threshold', 'suspicious_threshold')


def records(path):
    with open(path) as f:
        return json.load(f)['records']


def variant_h():
    fit, _ = split(records(FIT_ZOO), ['blended'], HOLDOUT_SEEDS)
    other = [r['features'] for path in OTHER for r in records(path) if not r['backdoored']]
    feats = [f for f in FEATURES if f != 'trigger_holdout_success']
    new = fit_calibration([r['features'] for r in fit], [int(r['backdoored']) for r in fit], feats,
                          version='x', description='x', other_recipes_clean=other)
    h = load_calibration(None, budget='standard')
    for k in COMBINER:
        setattr(h, k, getattr(new, k))
    return h, len(fit), len(other)


def summary(rs, cal):
    ps = [model_probability(r, cal) for r in rs]
    ordinary = [(p, int(r['backdoored'])) for p, r in zip(ps, rs) if not r['hard']]
    a = auroc([p for p, _ in ordinary], [y for _, y in ordinary])
    t5 = tpr_at_fpr([p for p, _ in ordinary], [y for _, y in ordinary])
    flagged = [p >= cal.backdoored_threshold for p in ps]
    bd = [f for f, r in zip(flagged, rs) if r['backdoored']]
    clean = [f for f, r in zip(flagged, rs) if not r['backdoored'] and not r['hard']]
    hard = [f for f, r in zip(flagged, rs) if r['hard']]
    tgt = [reported_target(r, cal) == r['target'] for r in rs if r['backdoored'] and r['type'] != 'all-to-all']
    return (f"AUROC {a if a is not None else float('nan'):.3f} TPR@5%FPR "
            f"{t5 if t5 is not None else float('nan'):.2f} TPR {sum(bd)}/{len(bd)} FPR {sum(clean)}/{len(clean)} "
            f"hard {sum(hard)}/{len(hard)} target {sum(tgt)}/{len(tgt)}")


if __name__ == '__main__':
    h, nfit, nother = variant_h()
    shipped = load_calibration(None, budget='standard')
    if sys.argv[1] == '--write':
        with open(sys.argv[2], 'w') as f:
            json.dump(asdict(h), f, indent=1)
        sys.exit()
    print(f"fit on {nfit}, other-recipe clean {nother}; BACKDOORED shipped {shipped.backdoored_threshold:.3f} "
          f"H {h.backdoored_threshold:.3f}; SUSPICIOUS shipped {shipped.suspicious_threshold:.3f} "
          f"H {h.suspicious_threshold:.3f}")
    print("H weights", dict(zip(h.features, [round(w, 2) for w in h.weights])))
    for arg in sys.argv[1:]:
        name, path = arg.split('=')
        rs = records(path)
        print(f"{name} | shipped: {summary(rs, shipped)} | H: {summary(rs, h)}")
