"""The read-out PLAN.md fixed, from study.py's rows.

    python docs/bench/trigger-init/analyze.py rows.jsonl

Rows of another start kind than saliency (``study.py``'s STARTS, e.g. sparse) are read the same way, with that
kind in saliency's place; the candidate second start is then min(uniform 20, KIND 21) (../trigger-sparse, s60).
"""
from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from statistics import median

from study import log_ratios

CUT, SUCCESS = math.log(2.5), 0.8


def found(row: dict) -> bool:
    return row["log_ratio"] >= CUT and row["holdout_success"] >= SUCCESS


def best_of(a: dict, b: dict) -> dict:
    """Two starts combined as the scanner combines them: per label the smaller trigger."""
    sizes = [min(x, y) for x, y in zip(a["sizes"], b["sizes"])]
    ratios = log_ratios(sizes)
    first = a if a["sizes"][0] <= b["sizes"][0] else b
    return {"log_ratio": ratios[0], "max_log_ratio": max(ratios), "holdout_success": first["holdout_success"],
            "iou": first["iou"], "sizes": sizes}


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    by = defaultdict(dict)
    for r in rows:
        by[(r["zoo"], r["model"])][(r["init"], r["generator"])] = r
    models = {k: v for k, v in by.items() if len(v) == 4}
    bd = {k: v for k, v in models.items() if next(iter(v.values()))["backdoored"]}
    cl = {k: v for k, v in models.items() if not next(iter(v.values()))["backdoored"]}
    print(f"{len(bd)} backdoored (patch triggers), {len(cl)} clean models; cut log ratio {CUT:.2f}, success {SUCCESS}")
    kind = next(r["init"] for r in rows if r["init"] != "uniform")
    salt = 20 if kind == "saliency" else 21  # the s55 plan's candidate; later plans use the second start's own
    variants = {
        "uniform 20 (the first start)": lambda v: v[("uniform", 20)],
        "uniform 21": lambda v: v[("uniform", 21)],
        f"{kind} 20": lambda v: v[(kind, 20)],
        f"{kind} 21": lambda v: v[(kind, 21)],
        "min(uniform 20, uniform 21) (now)": lambda v: best_of(v[("uniform", 20)], v[("uniform", 21)]),
        f"min(uniform 20, {kind} {salt}) (candidate)": lambda v: best_of(v[("uniform", 20)], v[(kind, salt)]),
        f"min({kind} 20, {kind} 21)": lambda v: best_of(v[(kind, 20)], v[(kind, 21)]),
    }
    print("| starts | backdoored found | median target log ratio | median IoU | mean IoU | clean max ratio >= cut |"
          " median clean max ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, pick in variants.items():
        b = [pick(v) for v in bd.values()]
        c = [pick(v) for v in cl.values()]
        ious = [x["iou"] for x in b if x["iou"] is not None]
        print(f"| {name} | {sum(found(x) for x in b)}/{len(b)} | {median(x['log_ratio'] for x in b):.2f} | "
              f"{median(ious):.2f} | {sum(ious) / len(ious):.2f} | "
              f"{sum(x['max_log_ratio'] >= CUT for x in c)}/{len(c)} | "
              f"{median(x['max_log_ratio'] for x in c):.2f} |")
    print(f"\nper backdoored model: target log ratio (IoU) for uniform 20 | uniform 21 | {kind} 20 | {kind} 21;"
          " saliency map's own top-k IoU")
    for (zoo, model), v in sorted(bd.items()):
        cells = " | ".join(f"{v[k]['log_ratio']:5.2f} ({v[k]['iou']:.2f})" for k in
                           [("uniform", 20), ("uniform", 21), (kind, 20), (kind, 21)])
        print(f"{zoo[-5:]} {model:32s} {cells} | {v[('uniform', 20)]['saliency_iou']:.2f}")
    print("\nclean models whose largest log ratio reaches the cut in any start:")
    for (zoo, model), v in sorted(cl.items()):
        hits = {f"{k[0]} {k[1]}": round(r["max_log_ratio"], 2) for k, r in v.items() if r["max_log_ratio"] >= CUT}
        if hits:
            print(f"{zoo[-5:]} {model:32s} {hits}")
    seconds = [r["seconds"] for r in rows]
    print(f"\nseconds per start: median {median(seconds):.1f}")


if __name__ == "__main__":
    main(sys.argv[1])
