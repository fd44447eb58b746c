"""Variant H: the shipped standard calibration with its (<20-class) combiner refitted on the same
41-model CIFAR-10 fitting split, the same other-recipe clean models for the BACKDOORED cut, less the
feature trigger_holdout_success. References, detector thresholds and the 20+-class entries are kept.

python variant_h.py --write OUT.json       # the calibration file
python variant_h.py name=results.json ...  # shipped vs H on bench records (ranking + verdict at each cut)
"""
import json, sys
from dataclasses import asdict
from modelscan_bd.bench import auroc, tpr_at_fpr, split, model_probability, reported_target
from modelscan_bd.verdict import FEATURES, fit_calibration, load_calibration

D = 'docs/bench/'
OTHER = [D + 'cifar10-wanet-pilot/results-seed300.json', D + 'cifar10-wanet-pilot/results-clean40-seed303.json',
         D + 'cifar10-warp/bench-seed300.json', D + 'cifar10-warp/bench-seed301.json', D + 'cifar10-warp/bench-seed302.json']


def variant_h():
    shipped = load_calibration(None, budget='standard')
    recs = json.load(open(D + 'cifar10/results.json'))['records']
    fit, _ = split(recs, ['blended'], [14, 15, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29])
    other = [r['features'] for f in OTHER for r in json.load(open(f))['records'] if not r['backdoored']]
    feats = [f for f in FEATURES if f != 'trigger_holdout_success']
    new = fit_calibration([r['features'] for r in fit], [int(r['backdoored']) for r in fit], feats,
                          version='x', description='x', other_recipes_clean=other)
    h = load_calibration(None, budget='standard')
    for k in ('features', 'mean', 'scale', 'weights', 'bias', 'fill', 'backdoored_threshold', 'suspicious_threshold'):
        setattr(h, k, getattr(new, k))
    return shipped, h, len(fit), len(other)


if __name__ == '__main__':
    shipped, h, nfit, nother = variant_h()
    if sys.argv[1] == '--write':
        json.dump(asdict(h), open(sys.argv[2], 'w'), indent=1)
        sys.exit()
    print(f"fit on {nfit}, other-recipe clean {nother}; BACKDOORED shipped {shipped.backdoored_threshold:.3f} "
          f"H {h.backdoored_threshold:.3f}; SUSPICIOUS shipped {shipped.suspicious_threshold:.3f} H {h.suspicious_threshold:.3f}")
    print("H weights", dict(zip(h.features, [round(w, 2) for w in h.weights])))
    for arg in sys.argv[1:]:
        name, path = arg.split('=')
        rs = [r for r in json.load(open(path))['records']]
        out = [name]
        for cname, cal in (('shipped', shipped), ('H', h)):
            ps = [model_probability(r, cal) for r in rs]
            ys = [int(r['backdoored']) for r in rs]
            nh = [(p, y) for p, y, r in zip(ps, ys, rs) if not r['hard']]
            fl = [p >= cal.backdoored_threshold for p in ps]
            tpr = sum(f for f, y in zip(fl, ys) if y), sum(ys)
            fpr = sum(f for f, y, r in zip(fl, ys, rs) if not y and not r['hard']), sum(1 for y, r in zip(ys, rs) if not y and not r['hard'])
            hard = sum(f for f, r in zip(fl, rs) if r['hard']), sum(1 for r in rs if r['hard'])
            tgt = sum(reported_target(r, cal) == r['target'] for r in rs if r['backdoored'] and r['type'] != 'all-to-all')
            a = auroc([p for p, _ in nh], [y for _, y in nh]) or float("nan"); t5 = tpr_at_fpr([p for p, _ in nh], [y for _, y in nh]) or float("nan")
            out.append(f"{cname}: AUROC {a:.3f} TPR@5 {t5:.2f} TPR {tpr[0]}/{tpr[1]} FPR {fpr[0]}/{fpr[1]} hard {hard[0]}/{hard[1]} tgt {tgt}")
        print(" | ".join(out))
