"""The held-out check of PLAN.md: the full screen's rows (`screen_ranks.py`) against the shipped detector's
(`../cifar10-source-specific/measure.py`), model by model, with the shipped calibration's cut.

    python docs/bench/pair-speed/check.py FULL.jsonl SHIPPED.jsonl
"""
import json
import sys

from modelscan_bd.verdict import load_calibration

cut = load_calibration(budget="standard").detectors["pair"]["score_threshold"]
full = {r["name"]: r for r in map(json.loads, open(sys.argv[1]))}
shipped = {r["name"]: r for r in map(json.loads, open(sys.argv[2]))}
same = flips = 0
print(f"cut {cut}\n{'model':34} {'full: pair, score':>22} {'halved: pair, score':>22} {'s full':>7} {'s halved':>8}")
for name, a in full.items():
    b = shipped[name]
    pa, pb = (a["found_source"], a["label"]), (b["found_source"], b["label"])
    equal = pa == pb and abs(a["score"] - b["score"]) < 1e-3
    same += equal
    flips += (a["score"] >= cut) != (b["score"] >= cut)
    print(f"{name:34} {str(pa):>12} {a['score']:9.4f} {str(pb):>12} {b['score']:9.4f} {a['seconds']:7.1f} {b['seconds']:8.1f}"
          + ("" if equal else "  <- differs"))
n = len(full)
print(f"equal on {same}/{n}; flag changed on {flips}; mean seconds (detector alone, load included): "
      f"full {sum(r['seconds'] for r in full.values()) / n:.1f}, halved {sum(shipped[k]['seconds'] for k in full) / n:.1f}")
print("ships" if flips == 0 and same >= n - 1 else "withdrawn: by the plan only the batched loss ships")
