"""Write the candidate `standard` file: `feature_gap`'s clean reference refitted on every normal clean
ten-class ResNet scanned with `feature-trigger` so far (the committed records of ../dev-clean-ia.json and
../test/results-*.json), by the shipped rule (`verdict.fit_references`, cut mean + 3 widened deviations).
The detector's own `gap_threshold` follows the cut. Nothing else in the file changes.

    python refit.py SHIPPED.json OUT.json
"""
import json
import sys
from pathlib import Path

from modelscan_bd.verdict import fit_references

HERE = Path(__file__).parent
DEV = HERE.parent / "dev-clean-ia.json"
TEST = [HERE.parent / "test" / f"results-{z}.json" for z in ("s2610", "s2620", "s2600")]


def clean_gaps() -> list[tuple[str, float]]:
    out = [(f"{r['zoo']}/{r['name']}", r["gap"]) for r in json.loads(DEV.read_text())["rows"]
           if r["attack"] == "clean" and not r["hard"]]
    for f in TEST:
        zoo = f.stem.removeprefix("results-")
        out += [(f"{zoo}/{r['name']}", r["features"]["feature_gap"]) for r in json.loads(f.read_text())["records"]
                if not r["backdoored"] and not r["hard"] and r["num_classes"] == 10]
    return out


def main(shipped: str, out: str) -> None:
    cal = json.loads(Path(shipped).read_text())
    gaps = clean_gaps()
    ref = fit_references([{"feature_gap": g} for _, g in gaps], [0] * len(gaps), {"feature_gap": 1}, 3.0)["feature_gap"]
    cut = ref["mean"] + ref["z_cut"] * ref["sd"]
    cal["references"]["feature_gap"] = ref
    cal["detectors"]["feature"]["gap_threshold"] = round(cut, 4)
    cal["version"] = cal["version"].replace("+feature-2026-12-06", "+feature-2026-12-07-ref21")
    cal["description"] = cal["description"].replace(
        "feature_gap reference from 8 clean 10-class models (zoos cifar10-heldout-s2300, cifar10-ia-s2500-asr80; "
        "docs/bench/feature-trigger)",
        f"feature_gap reference from {len(gaps)} clean 10-class models (zoos cifar10-heldout-s2300, "
        "cifar10-ia-s2500-asr80, cifar10-heldout-s2610, cifar10-ia-s2620, cifar10-ia-s2600; "
        "docs/bench/feature-trigger/reference-21)")
    Path(out).write_text(json.dumps(cal, indent=2) + "\n")
    for name, g in gaps:
        print(f"{name:40s} {g:.4f}")
    print(f"n {ref['n']}, mean {ref['mean']:.4f}, sd {ref['sd']:.4f}, cut {cut:.4f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
