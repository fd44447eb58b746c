"""Who sits between the shipped `standard` BACKDOORED cut (0.5 on ten classes) and 0.70, over every
committed ten-class `standard` bench record, scored with the shipped calibration: the evidence for or
against raising the cut.

    .venv/bin/python docs/bench/prescreen/cut_band.py"""
import json

from modelscan_bd.bench import model_probability
from modelscan_bd.verdict import load_calibration

RUNS = {  # zoo: (committed bench records, role for the shipped calibration)
    "v4": ("docs/bench/cifar10-v4/results-standard.json", "fitted on"),
    "v5": ("docs/bench/cifar10-v5/results-standard.json", "fitted on"),
    "v6": ("docs/bench/cifar10-v6/results-standard.json", "held out"),
    "s1400": ("docs/bench/cifar10-v4/blind-s1400-standard.json", "held out"),
    "s1700": ("docs/bench/target-rule/results-s1700.json", "held out"),
    "s1800": ("docs/bench/prescreen/results-before-s1800.json", "held out"),
    "s1810": ("docs/bench/prescreen/results-before-s1810.json", "held out"),
    "s1900": ("docs/bench/prescreen/results-before-s1900.json", "held out"),
}
HIGH = 0.70


def main() -> None:
    cal = load_calibration(None, budget="standard")
    cut = cal.cuts_for(10)[0]
    print(f"calibration {cal.version}; BACKDOORED cut on 10 classes {cut}; band [{cut}, {HIGH})")
    print("| zoo | role | clean >= cut | clean in band | backdoored in band | backdoored < cut |")
    print("|---|---|---|---|---|---|")
    totals = [0, 0, 0, 0, 0]
    for zoo, (path, role) in RUNS.items():
        records = json.load(open(path))["records"]
        scored = [(model_probability(r, cal), r) for r in records]
        clean = [p for p, r in scored if not r["backdoored"]]
        bd = [(p, r["attack"]) for p, r in scored if r["backdoored"]]
        flagged = sum(p >= cut for p in clean)
        clean_band = [round(p, 3) for p in clean if cut <= p < HIGH]
        bd_band = [f"{a} {p:.3f}" for p, a in bd if cut <= p < HIGH]
        missed = sum(p < cut for p, _ in bd)
        print(f"| {zoo} | {role} | {flagged}/{len(clean)} | {clean_band or '-'} | {', '.join(bd_band) or '-'} | "
              f"{missed}/{len(bd)} |")
        totals = [t + x for t, x in zip(totals, (flagged, len(clean), len(clean_band), len(bd_band), len(bd)))]
    print(f"all: clean flagged {totals[0]}/{totals[1]}, of which {totals[2]} in the band; {totals[3]} of "
          f"{totals[4]} backdoored models in the band would be missed at {HIGH}")


if __name__ == "__main__":
    main()
