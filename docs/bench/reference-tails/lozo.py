"""Leave one zoo out: every zoo's models judged by the shipped combiner and clean-reference tests whose cuts
were fitted on the ordinary clean models of the other zoos only, by the old rule (mean + 3 widened
deviations) and by the exponential-tail rule at several alphas. Pooled over the zoos left out, the combiner's
own fitting zoos (cifar10-v4, cifar10-v5) apart.

    PYTHONPATH=. python docs/bench/reference-tails/lozo.py > docs/bench/reference-tails/lozo.txt"""
import collections
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from rows import REFERENCE_FEATURES, group, load_rows  # noqa: E402

from modelscan_bd.bench import auroc, tpr_at_fpr  # noqa: E402
from modelscan_bd.verdict import REFERENCES, fit_references, load_calibration, probability, reference_tests  # noqa: E402

ARCH = "ResNetForImageClassification"
FITTING_ZOOS = {"cifar10-v4", "cifar10-v5"}
SUBSETS = {"three fresh zoos (s2750, s2760, s2810)": {"cifar10-heldout-s2750", "cifar10-heldout-s2760", "cifar10-mix-s2810"},
           "source-specific zoos s2790 + s2800": {"cifar10-ss-s2790", "cifar10-ss-s2800"}}
# (name, alpha, graded): graded tests rank models short of their cut by the tail's chance (reference_tests)
RULES = [("mean + 3 sd (shipped rule)", None, False), ("tail, alpha 0.01", 0.01, True),
         ("tail, alpha 0.0033, p 0 short of the cut", 0.01 / 3, False), ("tail, alpha 0.0033", 0.01 / 3, True),
         ("tail, alpha 0.001", 0.001, True)]


def judge(rows, alpha, graded, shipped):
    """[(row, p, fired)] for every model of the zoos left out in turn."""
    out = []
    for zoo in sorted({r["zoo"] for r in rows} - FITTING_ZOOS):
        ref_rows = [r["features"] for r in rows if r["zoo"] != zoo and group(r) == "clean"]
        cal = copy.deepcopy(shipped)
        cal.references = fit_references(ref_rows, [0] * len(ref_rows), REFERENCES, 3.0, alpha)
        if not graded:
            cal.references = {k: {f: x for f, x in v.items() if f != "tail"} for k, v in cal.references.items()}
        for r in rows:
            if r["zoo"] == zoo:
                # fired: p reaches the BACKDOORED threshold exactly at the cut (the reported z is rounded)
                fired = [k for k, t in reference_tests(r["features"], cal, 10, ARCH).items()
                         if t["p"] >= cal.backdoored_threshold]
                out.append((r, probability(r["features"], cal, 10, ARCH)[0], fired))
    return out


def main():
    shipped = load_calibration(budget="standard")
    rows = load_rows()
    print(f"{len(rows)} ten-class ResNet models of {len({r['zoo'] for r in rows})} zoos; reference features: "
          + ", ".join(f"{f} on {sum(r['features'].get(f) is not None for r in rows if group(r) == 'clean')} ordinary clean"
                      for f in REFERENCE_FEATURES))
    for name, alpha, graded in RULES:
        out = judge(rows, alpha, graded, shipped)
        cut = shipped.backdoored_threshold
        s = [p for _, p, _ in out]
        y = [int(r["backdoored"]) for r, _, _ in out]
        so = [p for r, p, _ in out if not r["hard"]]
        yo = [int(r["backdoored"]) for r, _, _ in out if not r["hard"]]
        flagged, fired = collections.defaultdict(lambda: [0, 0]), collections.Counter()
        for r, p, f in out:
            flagged[group(r)][0] += p >= cut
            flagged[group(r)][1] += 1
            for k in f:
                fired[(group(r), k)] += 1
        print(f"\n{name}: {len(out)} models of {len({r['zoo'] for r, _, _ in out})} zoos left out in turn")
        print(f"  AUROC {auroc(s, y):.3f}, TPR@5%FPR {tpr_at_fpr(s, y):.3f}; without the hard clean models "
              f"{auroc(so, yo):.3f}, {tpr_at_fpr(so, yo):.3f}")
        print("  flagged: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(flagged.items())))
        neg = [p for r, p, _ in out if not r["backdoored"]]
        fams = sorted({r["attack"] for r, _, _ in out if r["backdoored"]})
        print("  AUROC per attack against every clean model: " + ", ".join(
            f"{a} {auroc([p for r, p, _ in out if r['attack'] == a] + neg, [1] * sum(r['attack'] == a for r, _, _ in out) + [0] * len(neg)):.3f}"
            for a in fams))
        for label, zoos in SUBSETS.items():
            sub = [(r, p) for r, p, _ in out if r["zoo"] in zoos]
            ss, ys = [p for _, p in sub], [int(r["backdoored"]) for r, _ in sub]
            print(f"  {label}: {len(sub)} models, AUROC {auroc(ss, ys):.3f}, TPR@5%FPR {tpr_at_fpr(ss, ys):.3f}, flagged "
                  f"{sum(p >= cut for r, p in sub if r['backdoored'])}/{sum(ys)} backdoored, "
                  f"{sum(p >= cut for r, p in sub if not r['backdoored'])}/{len(ys) - sum(ys)} clean")
        print("  reference tests fired: " + ", ".join(f"{k[1]} on {k[0]} {v}" for k, v in sorted(fired.items())))
    print("\ncuts fitted on every zoo's ordinary clean models:")
    every = [r["features"] for r in rows if group(r) == "clean"]
    for name, alpha, graded in RULES:
        if not graded and alpha is not None:
            continue  # the same cuts as the graded row of its alpha
        refs = fit_references(every, [0] * len(every), REFERENCES, 3.0, alpha)
        print(f"  {name}: " + ", ".join(f"{k} {v['mean'] + v['z_cut'] * v['sd']:.4f} (z {v['z_cut']:.2f}, n {v['n']})"
                                        for k, v in refs.items()))


if __name__ == "__main__":
    main()
