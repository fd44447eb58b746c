"""The WaNet models of s1950 against the 53 clean models of the seven held-out ten-class zoos (20-epoch recipe)
and s1950's own 40-epoch clean models, scored with the shipped `standard` calibration: a cross-recipe view.

    .venv/bin/python docs/bench/cifar10-wanet-ten/cross_recipe.py"""
import json

from modelscan_bd.bench import auroc, model_probability, reported_target
from modelscan_bd.verdict import load_calibration, status_for

HELD_OUT = ["docs/bench/cifar10-v6/results-standard.json", "docs/bench/cifar10-v4/blind-s1400-standard.json",
            "docs/bench/target-rule/results-s1700.json", "docs/bench/prescreen/results-before-s1800.json",
            "docs/bench/prescreen/results-before-s1810.json", "docs/bench/prescreen/results-before-s1900.json",
            "docs/bench/heldout-standard/results-s1960.json"]
WANET = "docs/bench/cifar10-wanet-ten/results-s1950.json"


def separation(pos: list[float], neg: list[float]) -> float:
    """The bench's AUROC of ``pos`` (backdoored) against ``neg`` (clean)."""
    return auroc(pos + neg, [1] * len(pos) + [0] * len(neg))


def main() -> None:
    cal = load_calibration(None, budget="standard")
    own = json.load(open(WANET))["records"]
    wanet = [r for r in own if r["backdoored"]]
    clean40 = [model_probability(r, cal) for r in own if not r["backdoored"]]
    clean20 = [model_probability(r, cal) for path in HELD_OUT for r in json.load(open(path))["records"]
               if not r["backdoored"]]
    print("| model | attack success | p | verdict | reported target | true target | warp fragility | NC index |")
    print("|---|---|---|---|---|---|---|---|")
    ps = [model_probability(r, cal) for r in wanet]
    for r, p in zip(wanet, ps):
        print(f"| {r['name']} | {r['asr']:.3f} | {p:.3f} | {status_for(p, cal, False, 10)} | "
              f"{reported_target(r, cal)} | {r['target']} | {r['features']['warp_fragility']:.3f} | "
              f"{(r.get('neural_cleanse') or {}).get('score', float('nan')):.2f} |")
    print(f"\nWaNet p: min {min(ps):.3f}; s1950's 40-epoch clean p: {sorted(round(p, 3) for p in clean40)}")
    print(f"AUROC WaNet ({len(ps)}) vs s1950's 40-epoch clean ({len(clean40)}): {separation(ps, clean40):.3f}")
    print(f"AUROC WaNet ({len(ps)}) vs the held-out zoos' 20-epoch clean ({len(clean20)}): "
          f"{separation(ps, clean20):.3f}; clean above the lowest WaNet p: {sum(c >= min(ps) for c in clean20)}")


if __name__ == "__main__":
    main()
