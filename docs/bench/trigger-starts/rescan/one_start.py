"""The records of an earlier one-start bench file that a rescan with the second start may reuse.

    python docs/bench/trigger-starts/rescan/one_start.py OLD_RESULTS.json OUT.json

Trigger recovery runs its second start only when the first start's best trigger fails the shipped
calibration's cuts (log ratio >= 0.92 and held-out success >= 0.8, ``trigger.trigger_found``); a model
whose first start passed them runs the same computation either way, so its record is kept and
``bench --from-results OUT.json`` rescans only the others. Records within 0.001 of a cut (rounding in
the stored features) are rescanned too. Checked on s2000 and s2100, whose full rescans gave every
kept model the same features (2026-12-06, s55).
"""
from __future__ import annotations

import json
import sys

from modelscan_bd.detectors.trigger import trigger_found
from modelscan_bd.verdict import load_calibration

MARGIN = 0.001


def found_at_first_start(record: dict, cal: dict) -> bool:
    """The scanner's own rule, with both features moved MARGIN towards failing it."""
    f = record["features"]
    return trigger_found((f["trigger_log_ratio"] or 0.0) - MARGIN, (f["trigger_holdout_success"] or 0.0) - MARGIN,
                         cal)


def main(old: str, out: str) -> None:
    cal = load_calibration(family="classifier", budget="standard").detectors["trigger"]
    results = json.load(open(old))
    n = len(results["records"])
    results["records"] = [r for r in results["records"] if found_at_first_start(r, cal)]
    json.dump(results, open(out, "w"))
    print(f"{old}: {len(results['records'])} of {n} records kept, {n - len(results['records'])} to rescan")


if __name__ == "__main__":
    main(*sys.argv[1:3])
