"""Own-scan (and amplified-variant) recovered triggers of flagged candidates: success on the candidate vs on the base."""
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.gate import load_member, trigger_success, with_state
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.merging import task_vector, scaled

zoo, bench = Path(sys.argv[1]), Path(sys.argv[2])  # a merging zoo and a bench run folder with its scan cache
man = json.loads((zoo / "manifest.json").read_text()); E = {m["name"]: m for m in man["models"]}
cache = json.loads((bench / "scan-cache.json").read_text())
recs = [json.loads(l) for l in (bench / "records.jsonl").read_text().splitlines()]
base = load_member(str(zoo / "models/base"), lambda m: None)
clean = load_clean_data(str(zoo / "clean-data.npz"), base.adapter, budget=150, seed=0)
seen = set()
for r in recs:
    for c in r["candidates"]:
        if c["name"] in seen: continue
        seen.add(c["name"])
        cand = load_member(str(zoo / E[c["name"]]["path"]), lambda m: None)
        # find own scan summary in cache by matching probability and status
        for k, v in cache.items():
            if k.startswith('["own"') and v.get("probability") == c["own"] and v.get("_trigger"):
                lab = v["trigger"]["label"]
                on_c = trigger_success(cand.adapter, v["_trigger"], lab, clean); on_b = trigger_success(base.adapter, v["_trigger"], lab, clean)
                print(zoo.name, c["name"].ljust(14), "bd" if c["backdoored"] else "  ", "target", E[c["name"]].get("target"), "own", c["own_status"][:4], c["own"], "trig", lab, "on cand", round(on_c, 2), "on base", round(on_b, 2))
                break
