"""How much the gate's candidate-trigger verdicts (planted, specific) depend on the inversion's seed: each clean and
BadMerging candidate's trigger inverted against the base again, exactly as gate.differential_trigger does, with other
seeds (the gate uses 0), and the planted and specific tests re-applied per merge group with the gate's default cuts.
BadNets and Blended candidates (log ratios 1.58-3.26 at seed 0, far above both cuts) are left out to save time.
Usage: candidate-trigger-seeds.py ZOO RUN SEED [SEED ...]"""
import json
import sys
from pathlib import Path

from modelscan_bd.gate import GateOptions, differential_trigger, success_through, through_model_and_base
from zoo_probe import ZooProbe

z = ZooProbe(Path(sys.argv[1]), Path(sys.argv[2]))
opt = GateOptions()
SUCCESS_NEEDED = 0.8  # the merging calibration's holdout_success_threshold
groups, attack = {}, {}
for line in open(Path(sys.argv[2]) / "records.jsonl"):
    r = json.loads(line)
    if r["method"] == "task_arithmetic":  # the candidate tests do not depend on the merge method
        for c in r["candidates"]:
            groups.setdefault(c["name"], []).append([p for p in r["group"] if p != c["name"]])
            attack[c["name"]] = c.get("attack")
seed0 = z.cached(["differential", "own"], 3)
for n in sorted(groups):
    if attack[n] in ("badnets", "blended"):
        continue
    for seed in [0, *map(int, sys.argv[3:])]:
        found = seed0.get(n) if seed == 0 else differential_trigger(z.models[n], z.base.adapter, z.clean, "fast", seed)
        if not found:
            continue
        on_model, on_base, shared = through_model_and_base(z.models[n], z.base.adapter, found["_trigger"],
                                                           found["label"], z.clean, opt.attribution_drop,
                                                           opt.shared_success)
        works = on_model >= SUCCESS_NEEDED and not shared
        peers = [max(success_through({p: z.models[p] for p in g}, found["_trigger"], found["label"],
                                     z.clean).values()) for g in groups[n]]
        print(json.dumps({"zoo": z.zoo.name, "name": n, "attack": attack[n], "seed": seed, "label": found["label"],
                          "log_ratio": found["log_ratio"], "size": found["size"], "on_model": round(on_model, 3),
                          "on_base": round(on_base, 3), "peers_max": peers,
                          "planted": works and found["log_ratio"] >= opt.planted_log_ratio,
                          "specific": [works and found["log_ratio"] >= opt.specific_log_ratio
                                       and p <= opt.peer_transfer for p in peers]}), flush=True)
