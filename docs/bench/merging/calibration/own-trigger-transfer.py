"""Flagged own scans' recovered triggers (from a merging bench RUN folder's scan cache and records): success through
the candidate, the base and every other clean candidate of the zoo. Usage: own-trigger-transfer.py ZOO RUN"""
import json
import statistics as st
import sys
from pathlib import Path

from modelscan_bd.gate import trigger_success
from zoo_probe import ZooProbe

z = ZooProbe(Path(sys.argv[1]), Path(sys.argv[2]))
own = z.cached(["own"], 2)
flagged = {c["name"] for line in open(z.run / "records.jsonl") for c in json.loads(line)["candidates"]
           if c["own_status"].startswith("BACKDOORED")}
for n in sorted(flagged):
    s = own[n]
    if not s.get("_trigger"):
        continue
    lab = s["trigger"]["label"]
    peers = {m: round(trigger_success(a, s["_trigger"], lab, z.clean), 3) for m, a in z.models.items()
             if m != n and not z.truth[m].get("backdoored")}
    print(json.dumps({"zoo": z.zoo.name, "name": n, "backdoored": bool(z.truth[n].get("backdoored")),
                      "kind": z.truth[n].get("kind"), "target": z.truth[n].get("target"), "label": lab,
                      "on_self": round(trigger_success(z.models[n], s["_trigger"], lab, z.clean), 3),
                      "on_base": round(trigger_success(z.base.adapter, s["_trigger"], lab, z.clean), 3),
                      "peer_median": st.median(peers.values()), "peer_max": max(peers.values()), "peers": peers}))
