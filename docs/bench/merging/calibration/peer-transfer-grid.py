"""Group view of the peer-transfer statistic (peer-transfer-seed*.jsonl): each candidate instance (merge group, from a
bench RUN folder's records.jsonl) with its log ratio and its success through the group's other candidates; the rule
grid on the fitting zoos (s0, s2) and the held-out ones. Usage: peer-transfer-grid.py s0:RUN0 s1:RUN1 ..."""
import json, sys
out = []
for z, run in (a.split(":") for a in sys.argv[1:]):
    tr = {json.loads(l)["name"]: json.loads(l) for l in open(f"peer-transfer-seed{z[1:]}.jsonl")}
    groups = sorted({tuple(json.loads(l)["group"]) for l in open(f"{run}/records.jsonl")})
    for g in groups:
        for n in g:
            r = tr.get(n)
            if not r:
                continue
            peers = [r["others"][p] for p in g if p != n]
            out.append({"zoo": z, "group": g, "name": n, "bd": r["backdoored"], "kind": r["kind"], "lr": r["log_ratio"],
                        "self": r["on_self"], "base": r["on_base"], "pmax": max(peers), "pmean": sum(peers) / len(peers),
                        "right": r["label"] == r["target"]})

for lr_cut in (0.0, 0.5, 0.6, 0.69, 0.8):
    for pcut in (0.05, 0.1, 0.15):
        def rule(o):
            return o["lr"] >= lr_cut and o["self"] >= 0.8 and o["base"] <= 0.5 * o["self"] and o["pmax"] <= pcut
        for split, zs in (("fit", {"s0", "s2"}), ("held", {"s1", "s3", "s4", "s5", "s6", "s7"})):
            s = [o for o in out if o["zoo"] in zs]
            bm = [o for o in s if o["bd"] and o["kind"] == "badmerging"]
            cl = [o for o in s if not o["bd"]]
            fp = [f"{o['zoo']}:{o['name']}" for o in cl if rule(o)]
            print(f"lr>={lr_cut} pmax<={pcut} {split}: badmerging {sum(map(rule, bm))}/{len(bm)}  clean {len(fp)}/{len(cl)} {sorted(set(fp))}")
