"""signal-trigger v2's statistics on zoo models (v2 is not shipped: apply v2b.patch first, the evidence's
`strong_success` exists only there):

    git apply docs/bench/signal-strong/v2b.patch
    PYTHONPATH=. python docs/bench/signal-strong/measure.py ZOO/models/NAME ...
"""
import json, sys, time
from pathlib import Path
from modelscan_bd.scan import ScanConfig, scan

for arg in sys.argv[1:]:
    path = Path(arg); zoo = path.parent.parent
    t = time.perf_counter()
    out = scan(str(path), ScanConfig(budget="standard", seed=0, clean_data=str(zoo / "clean-data.npz"),
                                     detectors=["signal-trigger"]))
    f = next(f for f in out.report["findings"] if f["detector"] == "signal-trigger")
    ev = f["evidence"]
    truth = json.loads((zoo / "truth" / path.name / "groundtruth.json").read_text())
    print(json.dumps({"model": f"{zoo.name}/{path.name}", "attack": truth.get("attack"), "hard": truth.get("hard"),
                      "target": truth.get("target"), "label": ev["label"], "success": ev["holdout_success"],
                      "gap": ev["gap"], "strong": ev["strong_success"], "s": round(time.perf_counter() - t, 1)}),
          flush=True)
