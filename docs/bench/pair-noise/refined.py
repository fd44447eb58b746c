"""Scoring every refined pair instead of the smallest one (NOTES.md, "What the rows show instead"), on rows
of `measure.py` that hold `refined_rates`. Development only: every zoo here has been looked at.

    python docs/bench/pair-noise/refined.py refined.jsonl
    python docs/bench/pair-noise/refined.py s2880.jsonl refined.jsonl   # a test zoo, cuts fitted on the second

With a second file, each statistic's tail cut is fitted on that file's ordinary clean models (the development
rows) and applied to the first, as PLAN-largest.md's ship rule asks.
"""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analyze import SHIPPED_CUT, group, load  # noqa: E402

from modelscan_bd.bench import auroc  # noqa: E402
from modelscan_bd.detectors.pair import CROWD, pair_score  # noqa: E402
from modelscan_bd.verdict import REFERENCE_ALPHA, tail_cut  # noqa: E402


def pair_scores(r: dict, rates: str = "argmax") -> list[float]:
    """Each refined pair's score: log(the CROWD-th screened size / its refined size) x its specificity, from
    argmax hit rates on held-out images classified right (as the detector), their mean softmax (`soft`), or
    argmax hit rates on every held-out image not already at the target (`wide`, PLAN-wide.md)."""
    crowd = sorted(r["screened"])[min(CROWD, len(r["screened"])) - 1]
    out = []
    for i, (_, _, size) in enumerate(r["refined_top"]):
        gap = math.log(crowd / max(size, 1e-6))
        hold, off, soft_hold, soft_off = r["refined_rates"][i]
        if rates == "soft":
            hold, off = soft_hold, soft_off
        elif rates == "wide":
            hold, off = r["wide_rates"][i][:2]
        out.append(pair_score(gap, hold, off))
    return out


CANDIDATES = {
    "shipped (smallest refined pair)": lambda r: r["score"],
    "largest score of the 3 refined": lambda r: max(pair_scores(r)),
    "largest soft score of the 3 refined": lambda r: max(pair_scores(r, "soft")),
    "largest wide score of the 3 refined": lambda r: max(pair_scores(r, "wide")),
}
NEEDS = {"largest wide score of the 3 refined": "wide_rates"}  # reported only where every row holds it


def kept_pair(r: dict, rates: str = "argmax") -> tuple[int, int]:
    """The (source, target) of the refined pair with the largest score."""
    scores = pair_scores(r, rates)
    return tuple(r["refined_top"][max(range(len(scores)), key=scores.__getitem__)][:2])


def main(path: str, dev_path: str | None = None) -> None:
    rows = load(path)
    dev = load(dev_path) if dev_path else rows
    zoos = sorted({r["zoo"] for r in rows})
    print(f"{len(rows)} models of {', '.join(zoos)}: "
          + ", ".join(f"{g} {sum(group(r) == g for r in rows)}" for g in sorted({group(r) for r in rows})))
    has = {key: all(r.get(key) for r in rows + dev) for key in NEEDS.values()}
    wide = has["wide_rates"]
    for name, f in CANDIDATES.items():
        if name in NEEDS and not has[NEEDS[name]]:
            continue
        ss = [f(r) for r in rows if group(r) == "source_specific"]
        clean = [f(r) for r in rows if group(r) == "clean"]
        hard = [f(r) for r in rows if group(r) == "hard"]
        cut = tail_cut([f(r) for r in dev if group(r) == "clean"], REFERENCE_ALPHA)["cut"]
        a = auroc(ss + clean, [1] * len(ss) + [0] * len(clean))
        print(f"  {name}: AUROC {a:.3f}; tail cut {cut:.4f}: source-specific {sum(v >= cut for v in ss)}/{len(ss)}, "
              f"clean {sum(v >= cut for v in clean)}/{len(clean)}, hard {sum(v >= cut for v in hard)}/{len(hard)}; "
              f"clean max {max(clean):.3f}, hard max {max(hard, default=float('nan')):.3f}; source-specific under the clean max "
              f"{sum(v <= max(clean) for v in ss)}")
    print(f"  shipped at the shipped cut {SHIPPED_CUT}: source-specific "
          f"{sum(r['score'] >= SHIPPED_CUT for r in rows if group(r) == 'source_specific')}, clean "
          f"{sum(r['score'] >= SHIPPED_CUT for r in rows if group(r) == 'clean')}")
    if dev_path:
        print(f"  (tail cuts fitted on the ordinary clean models of {dev_path})")
    print("\nsource-specific models: true (source, target), smallest refined pair, the pair the largest score picks")
    named = [0, 0, 0]
    for r in rows:
        if group(r) != "source_specific":
            continue
        truth, (ks, kt) = (r["true_source"], r["target"]), kept_pair(r)
        named[0] += (r["source"], r["label"]) == truth
        named[1] += (ks, kt) == truth
        named[2] += wide and kept_pair(r, "wide") == truth
        print(f"  {r['zoo']} {r['name']}: true ({r['true_source']}, {r['target']}), smallest ({r['source']}, "
              f"{r['label']}) {r['score']:.3f}, largest ({ks}, {kt}) {max(pair_scores(r)):.3f}")

    print(f"planted pair named: smallest {named[0]}/{sum(group(r) == 'source_specific' for r in rows)}, "
          f"largest {named[1]}" + (f", largest wide {named[2]}" if wide else ""))


if __name__ == "__main__":
    main(*sys.argv[1:3])
