"""Each candidate's trigger inverted against the base (cached by the bench): its success through the merges of its
group (task arithmetic; TIES), beside the gate's record. Usage: candidate-trigger-through-merge.py ZOO RUN"""
import json
import sys
from pathlib import Path
from modelscan_bd.gate import load_member, trigger_success, with_state
from modelscan_bd.gate_bench import METHOD_SETTINGS
from modelscan_bd.gate_config import parse_config
from modelscan_bd.merging import merge_state_dicts
from zoo_probe import ZooProbe

z = ZooProbe(Path(sys.argv[1]), Path(sys.argv[2]))
trig = z.cached(["differential", "own"], 3)
base_state = z.base.state
states = {}


def state(n):
    if n not in states:
        states[n] = load_member(str(z.zoo / "models" / n), lambda m: None).state
    return states[n]


done = set()
for line in open(Path(sys.argv[2]) / "records.jsonl"):
    r = json.loads(line)
    if r["method"] not in ("task_arithmetic", "ties"):
        continue
    g = r["group"]
    w, d = METHOD_SETTINGS[r["method"]]
    cfg = parse_config({"models": [{"model": n, "parameters": {"weight": w, "density": d}} for n in g],
                        "base_model": "base", "merge_method": r["method"]})
    merged = with_state(z.base.adapter, merge_state_dicts(base_state, [state(n) for n in g], cfg.spec, seed=0), "m")
    for c in r["candidates"]:
        t = trig.get(c["name"])
        dt = c.get("differential_trigger") or {}
        if not t:
            continue
        print(json.dumps({"zoo": z.zoo.name, "group": r["group_index"], "method": r["method"], "name": c["name"],
                          "bd": c["backdoored"], "label": t["label"], "log_ratio": t["log_ratio"], "size": t["size"],
                          "on_model": dt.get("on_model"), "on_base": dt.get("on_base"),
                          "peers_max": max(dt.get("on_peers", {0: 0}).values()),
                          "planted": dt.get("planted"), "specific": dt.get("specific"),
                          "on_merge": round(trigger_success(merged, t["_trigger"], t["label"], z.clean), 4)}),
              flush=True)
