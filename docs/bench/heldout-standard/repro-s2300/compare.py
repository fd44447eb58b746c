"""Committed s2300 records vs a rescan of the rebuilt zoo: manifest fields, features, verdicts, seconds."""
import json
import sys

old = {r["name"]: r for r in json.load(open("docs/bench/heldout-standard/results-s2300.json"))["records"]}
om = {m["name"]: m for m in json.load(open("docs/bench/heldout-standard/zoo-manifest-s2300.json"))["models"]}
nm = {m["name"]: m for m in json.load(open(sys.argv[2]))["models"]}
new = json.load(open(sys.argv[1]))["records"]
same_train = sum(nm[n]["clean_acc"] == om[n]["clean_acc"] and nm[n].get("asr") == om[n].get("asr") for n in nm)
print(f"manifest: {same_train}/{len(nm)} models with identical clean accuracy and attack success")
worst = 0.0
for r in new:
    o = old[r["name"]]
    diffs = {k: (o["features"][k], v) for k, v in r["features"].items()
             if (o["features"].get(k) is None) != (v is None) or (v is not None and abs(o["features"][k] - v) > 1e-4)}
    worst = max([worst] + [abs(a - b) for a, b in diffs.values() if a is not None and b is not None])
    same = (r["suspected"] == o["suspected"], r["candidate"] == o["candidate"], r["trigger_starts"] == o["trigger_starts"])
    print(f"{r['name']:28s} features {'same' if not diffs else diffs} suspected/candidate/starts same {all(same)} "
          f"seconds {o['seconds']:.1f} -> {r['seconds']:.1f}")
print("largest feature difference", worst)
