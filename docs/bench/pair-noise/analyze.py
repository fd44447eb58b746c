"""The plan's candidates on development rows, and on the held-out rows with the cuts fitted on the development
clean models (PLAN.md).

    python docs/bench/pair-noise/analyze.py dev.jsonl [heldout.jsonl]
"""
import json
import math
import statistics
import sys

from modelscan_bd.bench import auroc
from modelscan_bd.verdict import REFERENCE_ALPHA, tail_cut

SHIPPED_CUT = 0.6113  # version 1's detectors.pair.score_threshold ("shipped" here: until s67; version 2 0.6763)


def refined_gap(r: dict) -> float:
    return math.log(statistics.median(r["crowd_refined"]) / max(r["size"], 1e-6))


def spec(hold, off) -> float:
    return 0.0 if hold is None or off is None else max(0.0, hold - off)


CANDIDATES = {
    "shipped": lambda r: r["score"],
    "soft": lambda r: r["crowd_gap"] * spec(r["soft_hold"], r["soft_off"]),
    "crowd": lambda r: refined_gap(r) * spec(r["holdout_success"], r["off_source_success"]),
    "both": lambda r: refined_gap(r) * spec(r["soft_hold"], r["soft_off"]),
}


def group(r: dict) -> str:
    return ("hard" if r["hard"] else "clean") if r["attack"] == "clean" else r["attack"]


def load(path: str) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def describe(rows: list[dict], name: str, f, cut: float) -> str:
    ss = [f(r) for r in rows if group(r) == "source_specific"]
    clean = [f(r) for r in rows if group(r) == "clean"]
    hard = [f(r) for r in rows if group(r) == "hard"]
    a = auroc(ss + clean, [1] * len(ss) + [0] * len(clean))
    return (f"{name:8s} AUROC {a:.3f}  cut {cut:.4f}  flagged source-specific {sum(v >= cut for v in ss)}/{len(ss)}, "
            f"clean {sum(v >= cut for v in clean)}/{len(clean)}, hard {sum(v >= cut for v in hard)}/{len(hard)}; "
            f"clean max {max(clean):.3f}, source-specific min {min(ss):.3f}, "
            f"median {statistics.median(ss):.3f}")


def main(dev_path: str, held_path: str | None = None) -> None:
    dev = load(dev_path)
    cuts = {}
    print(f"development rows: {len(dev)} ({', '.join(f'{g} {sum(group(r) == g for r in dev)}' for g in sorted({group(r) for r in dev}))})")
    for name, f in CANDIDATES.items():
        cuts[name] = tail_cut([f(r) for r in dev if group(r) == "clean"], REFERENCE_ALPHA)["cut"]
        print("  " + describe(dev, name, f, cuts[name]))
    print(f"  shipped  at the shipped cut: {describe(dev, 'shipped', CANDIDATES['shipped'], SHIPPED_CUT)[9:]}")
    if held_path:
        held = load(held_path)
        print(f"\nheld-out rows: {len(held)}, cuts from the development clean models (shipped also at its shipped cut)")
        print(f"  shipped  at the shipped cut: {describe(held, 'shipped', CANDIDATES['shipped'], SHIPPED_CUT)[9:]}")
        for name, f in CANDIDATES.items():
            print("  " + describe(held, name, f, cuts[name]))


if __name__ == "__main__":
    main(*sys.argv[1:])
