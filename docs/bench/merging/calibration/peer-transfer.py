"""Each candidate's trigger inverted against the base (cached by the merging bench in RUN/scan-cache.json):
its success through every other candidate of the zoo and through the base. Usage: peer-transfer.py ZOO RUN"""


import hashlib, json, sys
from pathlib import Path
import torch
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.gate import load_member, trigger_success
torch.set_num_threads(1)
zoo, run = Path(sys.argv[1]), Path(sys.argv[2])
man = json.loads((zoo / "manifest.json").read_text())
entries = {m["name"]: m for m in man["models"] if m["name"] != "base" and m.get("truth_dir")}
truth = {n: json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text()) for n, e in entries.items()}
sha = {hashlib.sha256((zoo / e["path"] / "model.safetensors").read_bytes()).hexdigest(): n for n, e in entries.items()}
cache = json.loads((run / "scan-cache.json").read_text())
diff = {}
for k, v in cache.items():
    key = json.loads(k)
    if key[0] == "differential" and key[1] == "own" and v and key[3] in sha:
        diff[sha[key[3]]] = v
base = load_member(str(zoo / "models" / "base"), lambda m: None)
clean = load_clean_data(str(zoo / "clean-data.npz"), base.adapter, budget=150, seed=0)
models = {n: load_member(str(zoo / e["path"]), lambda m: None).adapter for n, e in entries.items()}
for n, t in sorted(diff.items()):
    lab = t["label"]
    others = {m: round(trigger_success(a, t["_trigger"], lab, clean), 3) for m, a in models.items() if m != n}
    tr = truth[n]
    print(json.dumps({"zoo": zoo.name, "name": n, "kind": tr.get("kind"), "backdoored": bool(tr.get("backdoored")),
                      "target": tr.get("target"), "label": lab, "log_ratio": t["log_ratio"],
                      "on_self": round(trigger_success(models[n], t["_trigger"], lab, clean), 3),
                      "on_base": round(trigger_success(base.adapter, t["_trigger"], lab, clean), 3),
                      "others": others}), flush=True)
