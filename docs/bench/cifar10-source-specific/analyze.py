"""Candidate per-model statistics of `pair_probe.py` records, one line per model (exploratory).

    python docs/bench/cifar10-source-specific/analyze.py PROBE.jsonl...

min: the smallest pair trigger; log_med: log(median pair size / min); log_2nd: log(second smallest / min);
ai: Neural Cleanse's anomaly index over the pairs; top: the smallest pair (s, t, hold, off); rank: where the
planted pair stands among the 90.
"""
import json
import math
import sys
from statistics import median


def stats(row: dict) -> dict:
    pairs = sorted(row["pairs"], key=lambda p: p["size"])
    sizes = [p["size"] for p in pairs]
    med = median(sizes)
    mad = median(abs(s - med) for s in sizes) * 1.4826
    top = pairs[0]
    rank = next((i + 1 for i, p in enumerate(pairs) if (p["s"], p["t"]) == (row["source"], row["target"])), None)
    return {"min": sizes[0], "log_med": math.log(med / sizes[0]), "log_2nd": math.log(sizes[1] / sizes[0]),
            "ai": (med - sizes[0]) / mad, "top": (top["s"], top["t"], top["hold"], top["off"]), "rank": rank}


def main():
    rows = [json.loads(line) for f in sys.argv[1:] for line in open(f)]
    print(f"{'model':44} {'truth':18} {'min':>7} {'log_med':>7} {'log_2nd':>7} {'ai':>6}  top (s,t,hold,off)  rank")
    for r in sorted(rows, key=lambda r: stats(r)["log_med"]):
        s = stats(r)
        truth = "clean" + (" (hard)" if r.get("hard") else "") if r["target"] is None else \
            f"{r['attack']} {r['source']}->{r['target']}"
        print(f"{r['zoo'][-5:] + '/' + r['name']:44} {truth:18} {s['min']:7.4f} {s['log_med']:7.3f} "
              f"{s['log_2nd']:7.3f} {s['ai']:6.2f}  {s['top']}  {s['rank'] or ''}")


main()
