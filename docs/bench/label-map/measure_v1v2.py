"""v1 (shipped: 3 starts, largest spread) and v2 (6 starts, smallest trigger scored;
v2-preregistered.md) of the label-map detector on every model of some zoos, through the scan path
with only label-map selected, budget standard, seed 0, at v1's 300 steps. v2 is v1 with two things
swapped in: its start count and ``scored_start``.

    python measure_v1v2.py v2-test.jsonl zoo/gtsrb-a2a-s980 zoo/gtsrb-a2a-s960
    python measure_v1v2.py --v1-backdoored trigger-columns.jsonl zoo/gtsrb-a2a-s980 zoo/gtsrb-a2a-s960
"""
import json
import sys
import time
from pathlib import Path

import torch

from modelscan_bd import bench
from modelscan_bd.detectors import label_map as lm
from modelscan_bd.scan import ScanConfig, scan

VERSIONS = ("v1", "v2")
V1_PICK = lm.scored_start


def smallest(inverted, maps):
    """v2: the smallest trigger among the starts that reached the success bar (else the smallest)."""
    return min(range(len(inverted)), key=lambda i: (not inverted[i].reached, inverted[i].size))


def scan_variant(zoo, entry, starts, steps=300, pick=V1_PICK, lead_after=None):
    """One model through the scan path with only label-map selected, budget standard, seed 0, with the
    detector's start count, step count, scored start and lead step swapped in (v1: 3, 300, the largest
    spread, none; the detector has run 600 steps since v3, and only the leader at 300 past 300 since
    v4). Returns the outcome and the row both scripts write: the scored spread, whether it is flagged,
    the trigger's size, the step's and the scan's seconds, and every start's spread, size, reached,
    flip rate and (since v4) step count."""
    lm.STARTS["standard"], lm.STEPS["standard"], lm.scored_start = starts, steps, pick
    lm.LEAD_AFTER["standard"] = lead_after
    t = time.perf_counter()
    outcome = scan(str(zoo / entry["path"]), ScanConfig(budget="standard", seed=0, detectors=["label-map"],
                                                        clean_data=str(zoo / "clean-data.npz")))
    secs = time.perf_counter() - t
    res = outcome.context.results.get("label-map") or {}
    finding = next(f for f in outcome.report["findings"] if f["detector"] == "label-map")
    return outcome, {"spread": round(res["spread"], 4), "flagged": res["flagged"], "size": round(res["size"], 5),
                     "step_s": outcome.report["timing"]["steps"].get("label-map"), "scan_s": round(secs, 1),
                     "starts": [{k: st[k] for k in ("spread", "size", "reached", "flip_rate", "steps") if k in st}
                                for st in finding["evidence"]["starts"]]}


def one(zoo, entry, truth, version):
    outcome, row = scan_variant(zoo, entry, *((3, 300, V1_PICK) if version == "v1" else (6, 300, smallest)))
    true_mask = bench._true_mask(zoo, {**entry, "truth": truth})
    _, success, iou = bench.recovered_trigger(outcome.context.results, truth, true_mask)
    return {**row, "map_success": success and round(success, 4), "iou": iou and round(iou, 4)}


def main(argv):
    global VERSIONS
    torch.set_num_threads(2)
    if argv[0] == "--v1-backdoored":  # the shipped detector's trigger columns on the all-to-all models
        VERSIONS, argv = ("v1",), argv[1:]
    out = Path(argv[0])
    with out.open("w") as f:
        for zoo in map(Path, argv[1:]):
            manifest = json.loads((zoo / "manifest.json").read_text())
            for entry in manifest["models"]:
                truth = bench.read_truth(zoo, entry)
                row = {"zoo": zoo.name, "name": entry["name"], "backdoored": bool(truth.get("backdoored")),
                       "asr": truth.get("asr"), "clean_acc": truth.get("clean_acc")}
                if VERSIONS == ("v1",) and not row["backdoored"]:
                    continue
                for version in VERSIONS:
                    row[version] = one(zoo, entry, truth, version)
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(row["name"], row["asr"], {v: (row[v]["spread"], row[v]["flagged"], row[v]["step_s"],
                                                    row[v]["map_success"], row[v]["iou"]) for v in VERSIONS},
                      flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
