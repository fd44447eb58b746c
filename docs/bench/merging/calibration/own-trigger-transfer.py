"""Flagged own scans' recovered triggers (from a merging bench RUN folder's scan cache and records): success through
the candidate, the base and every other clean candidate of the zoo. Usage: own-trigger-transfer.py ZOO RUN"""
import hashlib, json, sys, statistics as st
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
own = {}
for k, v in cache.items():
    key = json.loads(k)
    if key[0] == "own" and key[2] in sha:
        own[sha[key[2]]] = v
flagged = {}
for l in open(run / "records.jsonl"):
    for c in json.loads(l)["candidates"]:
        if c["own_status"].startswith("BACKDOORED"):
            flagged[c["name"]] = c.get("base_checks", {}).get("own")
base = load_member(str(zoo / "models" / "base"), lambda m: None)
clean = load_clean_data(str(zoo / "clean-data.npz"), base.adapter, budget=150, seed=0)
models = {n: load_member(str(zoo / e["path"]), lambda m: None).adapter for n, e in entries.items()}
for n in sorted(flagged):
    s = own[n]
    if not s.get("_trigger"):
        continue
    lab = s["trigger"]["label"]
    peers = {m: round(trigger_success(a, s["_trigger"], lab, clean), 3) for m, a in models.items()
             if m != n and not truth[m].get("backdoored")}
    print(json.dumps({"zoo": zoo.name, "name": n, "backdoored": bool(truth[n].get("backdoored")),
                      "kind": truth[n].get("kind"), "target": truth[n].get("target"), "label": lab,
                      "on_self": round(trigger_success(models[n], s["_trigger"], lab, clean), 3),
                      "on_base": round(trigger_success(base.adapter, s["_trigger"], lab, clean), 3),
                      "peer_median": st.median(peers.values()), "peer_max": max(peers.values()), "peers": peers}))
