"""The ship rule of PLAN.md: per-model verdicts of two `bench-pool` results (v3, v4) of the same
zoo(s), the changes, and whether any clean verdict rose, any backdoored one fell, or AUROC fell.

    python docs/bench/trigger-sweep/compare.py V3/results.json V4/results.json [v3 v4]
"""
import json
import sys

ORDER = {"CLEAN": 0, "SUSPICIOUS": 1, "BACKDOORED": 2}
old, new = (json.load(open(f)) for f in sys.argv[1:3])
tags = sys.argv[3:5] or ["old", "new"]
by_old = {m["name"]: m for m in old["per_model"]}
promoted = {r["name"]: r.get("trigger_promoted") for r in new["records"]}
rose, fell, changed = [], [], 0
for m in new["per_model"]:
    o = by_old[m["name"]]
    if (o["verdict"], o["p"]) != (m["verdict"], m["p"]):
        changed += 1
        print(f"{m['name']:55s} {m['attack']:17s} {o['verdict']:10s} {o['p']:.4f} -> {m['verdict']:10s} {m['p']:.4f}")
    step = ORDER[m["verdict"]] - ORDER[o["verdict"]]
    if step > 0 and not m["backdoored"]:
        rose.append(m["name"])
    if step < 0 and m["backdoored"]:
        fell.append(m["name"])
short = [n for n, p in promoted.items() if p is not None]
print(f"models {len(new['per_model'])}, p changed {changed}, promoted {len(short)}: {short}")
for tag, res in zip(tags, (old, new)):
    mt = res["metrics"]
    print(f"{tag}: AUROC {mt['auroc']:.3f}, TPR@5%FPR {mt['tpr_at_5fpr']:.3f}, TPR {mt['tpr']:.3f}, FPR {mt['fpr']:.3f}, "
          f"targets {mt['target_accuracy']:.3f}, s/model {mt['seconds_per_model']:.1f}")
ok = not rose and not fell and new["metrics"]["auroc"] >= old["metrics"]["auroc"] - 1e-12
print(f"clean verdicts risen: {rose or 'none'}; backdoored verdicts fallen: {fell or 'none'}; "
      f"rule {'MET' if ok else 'NOT MET'}")
