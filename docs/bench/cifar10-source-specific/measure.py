"""Run the pair-trigger detector alone on zoo models (the real scan path, only `pair-trigger` selected,
budget standard, seed 0, the zoo's clean data) and write one JSON line per model.

    python docs/bench/cifar10-source-specific/measure.py OUT.jsonl ZOO [ZOO ...]    # ONLY=clean,hard: names
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

from modelscan_bd.bench import read_manifest, read_truth
from modelscan_bd.scan import ScanConfig, scan


def main(out: str, zoos: list[str]) -> None:
    torch.set_num_threads(2)
    only = [w for w in os.environ.get("ONLY", "").split(",") if w]
    for zoo in map(Path, zoos):
        for entry in read_manifest(zoo)["models"]:
            if only and not any(w in entry["name"] for w in only):
                continue
            truth = read_truth(zoo, entry)
            t = time.perf_counter()
            outcome = scan(str(zoo / entry["path"]), ScanConfig(budget="standard", seed=0, detectors=["pair-trigger"],
                                                                clean_data=str(zoo / "clean-data.npz")))
            r = outcome.context.results.get("pair-trigger") or {}
            row = {"zoo": zoo.name, "name": entry["name"], "attack": truth.get("attack") or "clean",
                   "hard": bool(entry.get("hard") or truth.get("hard")), "target": truth.get("target"),
                   "true_source": (truth.get("params") or {}).get("source"), "found_source": r.get("source"),
                   **{k: r.get(k) for k in ("label", "score", "crowd_gap", "size", "holdout_success", "off_source_success")},
                   "seconds": round(time.perf_counter() - t, 2)}
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
