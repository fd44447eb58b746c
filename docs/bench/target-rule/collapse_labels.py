"""Exposure-collapse and MM-BD labels of the backdoored models with no trigger recovered, rescanned with
only those two detectors (same seed, budget and clean data as the bench). Zoos under /work/zoo.

    .venv/bin/python docs/bench/target-rule/collapse_labels.py"""
import json, sys, time
from pathlib import Path
from modelscan_bd.verdict import load_calibration
from modelscan_bd.detectors.trigger import trigger_found
from modelscan_bd.scan import ScanConfig, scan
zoos = {"v4": ("docs/bench/cifar10-v4/results-standard.json", "/work/zoo/cifar10-v4"),
        "v5": ("docs/bench/cifar10-v5/results-standard.json", "/work/zoo/cifar10-v5"),
        "v6": ("docs/bench/cifar10-v6/results-standard.json", "/work/zoo/cifar10-v6"),
        "s1400": ("docs/bench/cifar10-v4/blind-s1400-standard.json", "/work/zoo/cifar10-blind-s1400")}
cal = load_calibration(None, budget="standard")
out = {}
for name, (path, zoo) in zoos.items():
    manifest = {m["name"]: m for m in json.load(open(Path(zoo) / "manifest.json"))["models"]}
    for r in json.load(open(path))["records"]:
        f = r["features"]
        if not r["backdoored"] or r["type"] == "all-to-all" or trigger_found(f["trigger_log_ratio"], f["trigger_holdout_success"], cal.detectors["trigger"]):
            continue
        if "--count" in sys.argv:
            out[f"{name}/{r['name']}"] = None; continue
        t = time.time()
        o = scan(str(Path(zoo) / manifest[r["name"]]["path"]), ScanConfig(budget="standard", seed=0, clean_data=str(Path(zoo) / "clean-data.npz"),
                 detectors=["exposure-collapse", "mmbd"]))
        res = o.context.results
        c, m = res.get("exposure-collapse") or {}, res.get("mmbd") or {}
        out[f"{name}/{r['name']}"] = {"collapse_label": c.get("label"), "agreement": c.get("agreement"), "concentration": c.get("concentration"),
            "mmbd_label": m.get("label", m.get("target")), "check_agreement": f["collapse_agreement"], "seconds": round(time.time() - t, 1)}
        print(name, r["name"], r["target"], out[f"{name}/{r['name']}"], flush=True)
print(len(out))
if "--count" not in sys.argv:
    json.dump(out, open("docs/bench/target-rule/collapse_labels.json", "w"), indent=1)
