"""Each candidate's trigger inverted against the base (cached by the merging bench in RUN/scan-cache.json):
its success through every other candidate of the zoo and through the base. Usage: peer-transfer.py ZOO RUN"""
import json
import sys
from pathlib import Path

from modelscan_bd.gate import trigger_success
from zoo_probe import ZooProbe

z = ZooProbe(Path(sys.argv[1]), Path(sys.argv[2]))
for n, t in sorted(z.cached(["differential", "own"], 3).items()):
    lab = t["label"]
    others = {m: round(trigger_success(a, t["_trigger"], lab, z.clean), 3) for m, a in z.models.items() if m != n}
    tr = z.truth[n]
    print(json.dumps({"zoo": z.zoo.name, "name": n, "kind": tr.get("kind"), "backdoored": bool(tr.get("backdoored")),
                      "target": tr.get("target"), "label": lab, "log_ratio": t["log_ratio"],
                      "on_self": round(trigger_success(z.models[n], t["_trigger"], lab, z.clean), 3),
                      "on_base": round(trigger_success(z.base.adapter, t["_trigger"], lab, z.clean), 3),
                      "others": others}), flush=True)
