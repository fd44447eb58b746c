"""Dev check of trigger-recovery v4 (PLAN.md): scan the named zoo models as bench does (budget
standard, seed 0, the zoo's clean data) and print the verdict and trigger recovery's sweep.

    PYTHONPATH=. python docs/bench/trigger-sweep/dev.py ZOO/MODEL [ZOO/MODEL ...]
"""
import json
import sys
from pathlib import Path

from modelscan_bd.scan import ScanConfig, scan

for arg in sys.argv[1:]:
    path = Path(arg)
    zoo = path.parent.parent  # ZOO/models/NAME
    outcome = scan(str(path), ScanConfig(budget="standard", seed=0, clean_data=str(zoo / "clean-data.npz")))
    verdict = outcome.report["verdict"]
    trig = next(f for f in outcome.report["findings"] if f["detector"] == "trigger-recovery")
    ev = trig.get("evidence") or {}
    print(json.dumps({"model": arg, "verdict": verdict["status"], "p": verdict.get("probability"),
                      "targets": [t["label"] for t in verdict["suspected_targets"]],
                      "trigger": {"status": trig["status"], "score": trig.get("score"), "best": ev.get("best"),
                                  "sweep": ev.get("sweep"), "starts": ev.get("starts")},
                      "features": verdict.get("features")}), flush=True)
