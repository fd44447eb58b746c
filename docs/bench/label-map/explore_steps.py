"""Design exploration and test of label-map v3 (v3-preregistered.md): does the label-map miss come
from too few steps rather than too few starts? Variants on zoos already seen (s980, s960 rebuilt):
  v1: 3 starts, 300 steps (shipped until v3)   s600: 3 starts, 600 steps   s2x600: 2 starts, 600 steps
The 600-step run with 3 starts replays v1's first 300 steps exactly (same generator draws).
And the test of v4 (v4-preregistered.md): s600 (= v3) against v4, 3 starts for 300 steps and then
only the leader at 300 to 600.

    python explore_steps.py v1,s600,s2x600 steps-design.jsonl zoo/gtsrb-a2a-s980 zoo/gtsrb-a2a-s960
    python explore_steps.py v1,s600 v3-test.jsonl zoo/gtsrb-a2a-s990     # the preregistered test
    python explore_steps.py s600,v4 v4-test.jsonl zoo/gtsrb-a2a-s1000    # v4's preregistered test
"""
import json
import sys
from pathlib import Path

import torch

from measure_v1v2 import scan_variant
from modelscan_bd import bench
from modelscan_bd.detectors import label_map as lm

VARIANTS = {"v1": (3, 300), "s600": (3, 600), "s2x600": (2, 600), "v4": (3, 600, lm.scored_start, 300)}


def main(argv):
    torch.set_num_threads(2)
    variants = argv[0].split(",")
    with Path(argv[1]).open("a") as f:
        for zoo in map(Path, argv[2:]):
            manifest = json.loads((zoo / "manifest.json").read_text())
            for entry in manifest["models"]:
                truth = bench.read_truth(zoo, entry)
                row = {"zoo": zoo.name, "name": entry["name"], "backdoored": bool(truth.get("backdoored")),
                       "asr": truth.get("asr")}
                for v in variants:
                    row[v] = scan_variant(zoo, entry, *VARIANTS[v])[1]
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(row["name"], row["asr"], {v: (row[v]["spread"], row[v]["step_s"],
                                                    [st["spread"] for st in row[v]["starts"]]) for v in variants},
                      flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
