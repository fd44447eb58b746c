"""PLAN-signal.md's development rows: `rank_lozo.py`'s 625 models, each zoo judged with every clean tail fitted on
the other zoos, by the shipped ranking and by `ranked+signal` (the same, with `signal_success`'s own clean-tail
chance among those the rank takes the smallest of). Machine-independent.

    PYTHONPATH=. python docs/bench/verdict-rank/rank_signal.py > docs/bench/verdict-rank/rank_signal.txt
"""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rank_lozo import ARCH, FITTING_ZOOS, dev_rows, group, judge, report, source_specific_auroc  # noqa: E402

from modelscan_bd.verdict import (REFERENCE_ALPHA, _extended_chance, clean_chances,  # noqa: E402
                                  combiner_probability, load_calibration, probability, reference_tests,
                                  short_of_cuts_rank, status_for, tail_cut)

SIGNAL = "signal_success"


def with_signal(rows: list[dict], cal, tail: dict) -> list[tuple[dict, float]]:
    """[(row, p)]: the shipped ranking, with the signal cue's clean-tail chance among the chances where a model
    is ranked short of the cuts (flagged models as shipped)."""
    out = []
    t = cal.backdoored_threshold
    below = math.nextafter(min(t, cal.suspicious_threshold), 0.0)
    for r in rows:
        f = r["features"]
        p = combiner_probability(f, cal, 10, ARCH)[0]
        if short_of_cuts_rank(p, f, reference_tests(f, cal, 10, ARCH), cal, 10, ARCH) is None:
            out.append((r, probability(f, cal, 10, ARCH)[0]))
            continue
        chances = list(clean_chances(p, f, cal, 10, ARCH).values())
        if f.get(SIGNAL) is not None:
            chances.append(_extended_chance(float(f[SIGNAL]), tail["u"], tail["beta"], tail["p_u"]))
        out.append((r, min(below, t * cal.combiner_tail["alpha"] / max(min(chances), 1e-300))))
    return out


def main():
    shipped = load_calibration(budget="standard")
    rows = dev_rows()
    before, after = [], []
    for zoo in sorted({r["zoo"] for r in rows} - FITTING_ZOOS):
        judged, others = [r for r in rows if r["zoo"] == zoo], [r for r in rows if r["zoo"] != zoo]
        out, cal = judge(judged, others, shipped, True)
        clean = [r["features"][SIGNAL] for r in others
                 if group(r) == "clean" and r["zoo"] not in FITTING_ZOOS and r["features"].get(SIGNAL) is not None]
        before += out
        after += with_signal(judged, cal, tail_cut(clean, REFERENCE_ALPHA))
    print(f"{len(before)} models of {len({r['zoo'] for r, _ in before})} zoos, each judged with every tail fitted on the others")
    cut = shipped.backdoored_threshold
    for label, out in (("shipped ranking", before), ("ranked+signal: signal_success's clean tail among the chances", after)):
        report(label, out, cut)
        print(f"  source-specific against ordinary clean: {source_specific_auroc(out)}")
    moved = sum(status_for(a, shipped, False, 10, ARCH) != status_for(b, shipped, False, 10, ARCH)
                for (_, a), (_, b) in zip(before, after))
    print(f"\nstatuses that differ between the two rules: {moved} of {len(before)}")


if __name__ == "__main__":
    main()
