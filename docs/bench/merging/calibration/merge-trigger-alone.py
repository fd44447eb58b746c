"""For every merge of a merging bench run (RUN/records.jsonl, scans and triggers cached in RUN/scan-cache.json)
whose trigger went to leave-one-out: that trigger's success through each candidate of the group alone, beside the
record's leave-one-out numbers. Usage: merge-trigger-alone.py ZOO RUN"""
import json
import sys
from pathlib import Path

from modelscan_bd.gate import trigger_success
from zoo_probe import ZooProbe

z = ZooProbe(Path(sys.argv[1]), Path(sys.argv[2]))
merges, diffs = {}, {}
for k, v in z.cache.items():
    key = json.loads(k)
    if key[0] == "merge" and v:
        names = tuple(z._by_sha.get(x[0], "?") for x in key[6])
        merges[(key[2], names)] = v
    if key[:2] == ["differential", "merge"] and v:
        names = tuple(z._by_sha.get(x[0], "?") for x in key[7])
        diffs[(key[3], names)] = v
for line in open(Path(sys.argv[2]) / "records.jsonl"):
    r = json.loads(line)
    tt = r["merged"].get("trigger_transfer")
    dets = [c.get("attribution_detail") or {} for c in r["candidates"]]
    if not tt or not any(d.get("success_with_all") for d in dets) or tt["source"] == "collapse":
        continue
    judged = "task_arithmetic" if r["method"] == "dare_linear" else r["method"]
    g = tuple(r["group"])
    src = merges if tt["source"] == "scan" else diffs
    e = src.get((judged, g))
    if e is None:
        print("missing", r["group_index"], r["method"], tt["source"], file=sys.stderr)
        continue
    trig, lab = e["_trigger"], tt["label"]
    alone = {n: round(trigger_success(z.models[n], trig, lab, z.clean), 3) for n in g}
    print(json.dumps({"zoo": z.zoo.name, "group": r["group_index"], "method": r["method"], "source": tt["source"],
                      "label": lab, "on_merge": tt["on_merge"], "on_base": tt["on_base"],
                      "specific": tt["merge_specific"],
                      "cands": [{"name": c["name"], "bd": c["backdoored"], "verdict": c["verdict"],
                                 "without": d.get("success_without"), "attributed": d.get("attributed"),
                                 "alone": alone[c["name"]]} for c, d in zip(r["candidates"], dets)]}), flush=True)
