"""Add the warp-fragility clean-reference test to the shipped classifier calibration, and score it.

The combiner's weights are not refitted (that needs the whole CIFAR-10 zoo rescanned): this fits
only ``references["warp_fragility"]``, with the library's own ``verdict.fit_references``, on the
clean models of the fitting side (benchmark recipe seeds 0-13, and the six 40-epoch clean models
of seed 303), and adds the detector's thresholds as the ``warp`` block.

    python fit_references.py detect.jsonl ../../../modelscan_bd/calibration/classifier.json

Writes the calibration in place and prints how the test scores every other model in detect.jsonl.
"""
import datetime
import json
import sys

from modelscan_bd.detectors.warp import DEFAULT_FRAGILITY, DEFAULT_SUCCESS
from modelscan_bd.verdict import REFERENCES, Calibration, fit_references, reference_tests


def fitting_side(row: dict) -> bool:
    zoo, name = row["key"].split("/")
    if zoo == "zoo-clean40-303":
        return True
    return zoo == "zoo-clean20" and row["attack"] == "clean" and row["seed"] <= 13


def main(records: str, cal_path: str) -> None:
    rows = [json.loads(line) for line in open(records)]
    fit = [r for r in rows if fitting_side(r)]
    assert all(r["attack"] == "clean" for r in fit)
    cal = Calibration(**json.load(open(cal_path)))
    features = [{"warp_fragility": r["fragility"]} for r in fit]
    cal.references = fit_references(features, [0] * len(fit), REFERENCES, z_cut=3.0)
    cal.detectors["warp"] = {"fragility_threshold": DEFAULT_FRAGILITY, "success_threshold": DEFAULT_SUCCESS}
    base = cal.version.split("+")[0]
    cal.version = f"{base}+warp-{datetime.date.today().isoformat()}"
    cal.description = (cal.description.split("; warp_fragility")[0]
                       + f"; warp_fragility reference from {len(fit)} clean models "
                       "(CIFAR-10 seeds 0-13 at 20 epochs, 6 at 40 epochs)")
    open(cal_path, "w").write(cal.to_json())
    print(json.dumps(cal.references, indent=1))
    for r in rows:
        if fitting_side(r):
            continue
        test = reference_tests({"warp_fragility": r["fragility"]}, cal)["warp_fragility"]
        print(f'{r["key"]:45s} {r["attack"]:6s} fragility {r["fragility"]:.3f} z {test["z"]:7.2f} p {test["p"]:.3f}'
              f' label {r["label"]} target {r["target"]}')


if __name__ == "__main__":
    main(*sys.argv[1:])
