"""Target accuracy and SIG counts of a pooled held-out record, with Wilson 95 % intervals.

    python docs/bench/heldout-standard/target_interval.py docs/bench/heldout-standard/without-v6/results.json

Target accuracy is bench's own (``bench.reported_target`` under the shipped calibration, over the
all-to-one, clean-label and source-specific models); per zoo, then pooled. Reads only committed JSON.
"""
from __future__ import annotations

import json
import math
import sys
from collections import defaultdict

from modelscan_bd.bench import TARGETED_TYPES, model_probability, reported_target
from modelscan_bd.verdict import load_calibration


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def line(label: str, hits: int, n: int) -> str:
    if not n:
        return f"{label}: none"
    lo, hi = wilson(hits, n)
    return f"{label:<44} {hits:>3}/{n:<3} = {hits / n:.3f}   Wilson 95 % [{lo:.3f}, {hi:.3f}]"


def main(path: str) -> None:
    result = json.load(open(path))
    cal = load_calibration(None, budget="standard")
    cut = cal.cuts_for(10)[0]
    by_zoo: dict[str, list[bool]] = defaultdict(list)
    misses = []
    sig = {"n": 0, "flagged": 0, "target": 0}
    for r in result["records"]:
        targeted = r["backdoored"] and r["type"] in TARGETED_TYPES
        if not (targeted or r["attack"] == "sig"):
            continue  # clean and all-to-all models name no target to score
        zoo = r["name"].split("/")[0]
        reported = reported_target(r, cal)
        if targeted:
            by_zoo[zoo].append(reported == r["target"])
            if reported != r["target"]:
                misses.append(f"{r['name']} ({r['attack']}): true {r['target']}, reported {reported}")
        if r["attack"] == "sig":
            sig["n"] += 1
            sig["flagged"] += model_probability(r, cal) >= cut
            sig["target"] += reported == r["target"]
    print(f"calibration {cal.version}; BACKDOORED cut {cut:g}")
    for zoo, oks in sorted(by_zoo.items()):
        print(line(f"target accuracy, {zoo}", sum(oks), len(oks)))
    allok = [ok for oks in by_zoo.values() for ok in oks]
    print(line("target accuracy, pooled", sum(allok), len(allok)))
    print("misses:", *misses, sep="\n  ")
    print(line("SIG flagged, pooled", sig["flagged"], sig["n"]))
    print(line("SIG right target, pooled", sig["target"], sig["n"]))


if __name__ == "__main__":
    main(sys.argv[1])
