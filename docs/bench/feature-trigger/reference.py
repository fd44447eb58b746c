"""Run the feature-trigger detector alone on zoo models and fit its clean reference.

    THREADS=1 python reference.py OUT.json ZOO [ZOO ...]

Each model is scanned by the real scan path with only ``feature-trigger`` selected (standard budget,
seed 0, the zoo's clean data). The reference is ``verdict.fit_references`` over the non-hard clean
models: mean and widened deviation of ``feature_gap``; the cut is mean + 3 deviations.
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

from modelscan_bd.bench import read_manifest, read_truth
from modelscan_bd.scan import ScanConfig, scan
from modelscan_bd.verdict import fit_references


def main(out: str, zoos: list[str]) -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    rows = []
    for zoo in map(Path, zoos):
        for entry in read_manifest(zoo)["models"]:
            if os.environ.get("ONLY") and not any(w in entry["name"] for w in os.environ["ONLY"].split(",")):
                continue
            truth = read_truth(zoo, entry)
            t = time.perf_counter()
            outcome = scan(str(zoo / entry["path"]), ScanConfig(budget="standard", seed=int(os.environ.get("SEED", "0")), detectors=["feature-trigger"],
                                                                clean_data=str(zoo / "clean-data.npz")))
            r = outcome.context.results.get("feature-trigger") or {}
            rows.append({"zoo": zoo.name, "name": entry["name"], "attack": truth.get("attack") or "clean",
                         "hard": bool(entry.get("hard")), "target": truth.get("target"), "label": r.get("label"),
                         "gap": r.get("gap"), "size": r.get("size"), "holdout_success": r.get("holdout_success"),
                         "seconds": round(time.perf_counter() - t, 2)})
            print(json.dumps(rows[-1]), flush=True)
    clean = [{"feature_gap": r["gap"]} for r in rows if r["attack"] == "clean" and not r["hard"]]
    ref = fit_references(clean, [0] * len(clean), {"feature_gap": 1}, 3.0).get("feature_gap")  # None below 3
    if ref:
        ref["cut"] = ref["mean"] + ref["z_cut"] * ref["sd"]
    Path(out).write_text(json.dumps({"zoos": [Path(z).name for z in zoos], "reference": ref, "rows": rows},
                                    indent=1) + "\n")
    print(json.dumps(ref))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
