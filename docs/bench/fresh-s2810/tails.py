"""Ordinary clean models' reference features, zoo by zoo, from committed bench records, and how many exceed the
shipped cuts.   python docs/bench/fresh-s2810/tails.py"""
import json
import statistics as st

from modelscan_bd.verdict import load_calibration

FILES = {"s2750": "docs/bench/heldout-v5/results-s2750.json", "s2760": "docs/bench/heldout-v5/results-s2760.json",
         "s2780": "docs/bench/cifar10-source-specific/results-s2780-shipped.json",
         "s2790": "docs/bench/cifar10-source-specific/results-s2790.json",
         "s2800": "docs/bench/cifar10-source-specific/results-s2800.json",
         "s2810": "docs/bench/fresh-s2810/results-s2810.json"}
refs = load_calibration(budget="standard").references
for feat, ref in refs.items():
    cut = ref["mean"] + ref["z_cut"] * ref["sd"]
    above = total = 0
    print(f"{feat} (reference n {ref['n']}, cut {cut:.4f})")
    for zoo, path in FILES.items():
        vals = [r["features"].get(feat) for r in json.load(open(path))["records"] if r["attack"] == "clean" and not r.get("hard")]
        vals = [v for v in vals if v is not None]
        if len(vals) < 2:
            continue
        above += sum(v >= cut for v in vals)
        total += len(vals)
        print(f"  {zoo}: n {len(vals)}, mean {st.mean(vals):.3f}, sd {st.stdev(vals):.3f}, max {max(vals):.3f}, "
              f"above the cut {sum(v >= cut for v in vals)}")
    print(f"  above the cut: {above} of {total} ordinary clean models")
