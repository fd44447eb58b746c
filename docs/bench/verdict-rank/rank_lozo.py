"""Development rows for PLAN.md: every committed ten-class ResNet zoo (the combiner's fitting zoos v4 and v5
apart) judged with its clean references and the combiner's clean tail fitted on the other zoos only, by the
shipped rule (the larger of the combiner's probability and the tests' ranks) and by `ranked` (short of every
cut, threshold x alpha / the smallest clean-tail chance, the combiner's logit included:
``verdict.short_of_cuts_rank``). Machine-independent (no scanning).

    PYTHONPATH=. python docs/bench/verdict-rank/rank_lozo.py > docs/bench/verdict-rank/rank_lozo.txt
"""
import copy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH / "reference-tails"))
sys.path.insert(0, str(BENCH / "combiner-pool"))
from lozo_combiner import ARCH, FITTING_ZOOS, report  # noqa: E402
from rows import group, load_rows  # noqa: E402

from modelscan_bd.bench import auroc  # noqa: E402
from modelscan_bd.verdict import (FEATURES, REFERENCE_ALPHA, REFERENCES, fit_combiner_tail,  # noqa: E402
                                  fit_references, load_calibration, probability, status_for)


TEST_ZOOS = {"cifar10-ss-s2890", "cifar10-mix-s2900", "cifar10-mix-s2910"}  # PLAN.md's test and follow-up; PLAN-signal2.md's test


def dev_rows() -> list[dict]:
    """The development rows: every fully scanned committed ten-class ResNet, the test zoo apart."""
    return [r for r in load_rows() if scanned(r) and r["zoo"] not in TEST_ZOOS]


def scanned(r: dict) -> bool:
    """A full scan's row: every combiner feature measured (pair-trigger's measurement rows hold one feature)."""
    return all(r["features"].get(f) is not None for f in FEATURES)


def judge(rows: list[dict], ref_rows: list[dict], shipped, with_tail: bool):
    """[(row, p)] of ``rows`` with references (and the combiner's tail) fitted on ``ref_rows``' ordinary clean models."""
    clean = [r["features"] for r in ref_rows if group(r) == "clean"]
    cal = copy.deepcopy(shipped)
    cal.references = fit_references(clean, [0] * len(clean), REFERENCES, 3.0, REFERENCE_ALPHA)
    cal.combiner_tail = {}  # the rule before (the shipped file holds the tail since the test passed)
    if with_tail:
        tail_rows = [r["features"] for r in ref_rows
                     if group(r) == "clean" and scanned(r) and r["zoo"] not in FITTING_ZOOS]
        cal.combiner_tail = fit_combiner_tail(tail_rows, cal, REFERENCE_ALPHA)
    return [(r, probability(r["features"], cal, 10, ARCH)[0]) for r in rows], cal


def lozo(rows, shipped, with_tail):
    out = []
    for zoo in sorted({r["zoo"] for r in rows} - FITTING_ZOOS):
        out += judge([r for r in rows if r["zoo"] == zoo], [r for r in rows if r["zoo"] != zoo], shipped, with_tail)[0]
    return out


def source_specific_auroc(out) -> str:
    ss = [p for r, p in out if r["attack"] == "source_specific"]
    clean = [p for r, p in out if group(r) == "clean"]
    return f"{auroc(ss + clean, [1] * len(ss) + [0] * len(clean)):.3f} ({len(ss)} against {len(clean)} ordinary clean)"


def main():
    shipped = load_calibration(budget="standard")
    rows = dev_rows()
    print(f"{len(rows)} fully scanned ten-class ResNet models of {len({r['zoo'] for r in rows})} zoos; every zoo but "
          "v4 and v5 judged with itself left out of every fit")
    cut = shipped.backdoored_threshold
    before, after = lozo(rows, shipped, False), lozo(rows, shipped, True)
    for label, out in (("shipped: the larger of the combiner's probability and the tests' ranks", before),
                       ("ranked: short of every cut, the smallest clean-tail chance, the combiner's included", after)):
        report(label, out, cut)
        print(f"  source-specific against ordinary clean: {source_specific_auroc(out)}")
    moved = sum(status_for(a, shipped, False, 10, ARCH) != status_for(b, shipped, False, 10, ARCH)
                for (_, a), (_, b) in zip(before, after))
    print(f"\nstatuses that differ between the two rules: {moved} of {len(before)}")
    tail = judge([], rows, shipped, True)[1].combiner_tail
    print(f"the combiner's clean tail on every development row: {tail}")


if __name__ == "__main__":
    main()
