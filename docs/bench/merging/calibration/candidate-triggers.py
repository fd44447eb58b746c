"""Prototype: each candidate's trigger inverted against the base (gate.differential_trigger with the
candidate as model); success through candidate and base; truth beside it."""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.gate import load_member, differential_trigger, trigger_success
from modelscan_bd.cleandata import load_clean_data

zoo = Path(sys.argv[1])
man = json.loads((zoo / "manifest.json").read_text())
base = load_member(str(zoo / "models/base"), lambda m: None)
clean = load_clean_data(str(zoo / "clean-data.npz"), base.adapter, budget=150, seed=0)
for m in man["models"]:
    if m.get("role") != "candidate": continue
    t0 = time.time()
    cand = load_member(str(zoo / m["path"]), lambda m: None)
    d = differential_trigger(cand.adapter, base.adapter, clean, "fast", 0)
    print(json.dumps({"zoo": zoo.name, "name": m["name"], "target": m.get("target"),
                      **{k: d[k] for k in ("label", "shape", "size", "log_ratio")},
                      "on_cand": round(trigger_success(cand.adapter, d["_trigger"], d["label"], clean), 3),
                      "on_base": round(trigger_success(base.adapter, d["_trigger"], d["label"], clean), 3),
                      "sec": round(time.time() - t0, 1)}), flush=True)
