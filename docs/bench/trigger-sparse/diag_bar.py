"""Diagnostic (s60): trigger recovery alone (after exposure) with NC's success bar 0.98 against a lower one.

    python diag_bar.py BAR ZOO/models/NAME [...]   # diag_bar.txt: 0.98 and 0.9 on four s2700 models
"""
import json, sys, dataclasses
import torch
from modelscan_bd.detectors import trigger
from modelscan_bd.scan import ScanConfig, scan
torch.set_num_threads(1)
bar = float(sys.argv[1])
for path in sys.argv[2:]:
    s, n = trigger.SETTINGS["standard"]
    trigger.SETTINGS["standard"] = (dataclasses.replace(s, success=bar), n)
    zoo = path.split("/models/")[0]
    out = scan(path, ScanConfig(budget="standard", seed=0, detectors=["exposure-collapse", "trigger-recovery"],
                                clean_data=zoo + "/clean-data.npz"))
    r = out.context.results.get("trigger-recovery") or {}
    trigger.SETTINGS["standard"] = (s, n)
    print(json.dumps({"bar": bar, "model": path.split("/")[-1], "label": r.get("label"), "log_ratio": r.get("log_ratio"),
                      "success": r.get("holdout_success")}), flush=True)
