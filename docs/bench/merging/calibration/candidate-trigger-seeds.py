"""How much the gate's candidate-trigger verdicts (planted, specific) depend on the inversion's seed: each clean and
BadMerging candidate's trigger inverted against the base again, exactly as gate.differential_trigger does, with other
seeds (the gate uses 0), and the planted and specific tests re-applied per merge group with the gate's default cuts.
BadNets and Blended candidates (log ratios 1.58-3.26 at seed 0, far above both cuts) are left out to save time.
The tests are gate.measure_start and gate.candidate_trigger on one start. The committed records were written when the
probe restated those tests itself, with on_model and on_base rounded to 3 decimals (now 4, as the gate reports them);
re-run on the seed-0 inversions of zoos s0, s3 and s12, the two versions agree on every label, ratio, peer and
verdict.
Usage: candidate-trigger-seeds.py ZOO RUN SEED [SEED ...]"""
import json
import sys
from pathlib import Path

from modelscan_bd.gate import GateOptions, candidate_trigger, differential_trigger, measure_start
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
        # One start through gate.measure_start and gate.candidate_trigger, its peers per merge group.
        peers = {p: z.models[p] for g in groups[n] for p in g}
        start = measure_start(found, z.models[n], z.base.adapter, peers, z.clean)
        tested = [candidate_trigger([{**start, "on_peers": {p: start["on_peers"][p] for p in g}}], opt, SUCCESS_NEEDED)
                  for g in groups[n]]
        print(json.dumps({"zoo": z.zoo.name, "name": n, "attack": attack[n], "seed": seed, "label": found["label"],
                          "log_ratio": found["log_ratio"], "size": found["size"],
                          "on_model": start["on_model"], "on_base": start["on_base"],
                          "peers_max": [max(t["on_peers"].values()) for t in tested],
                          "planted": tested[0]["planted"], "specific": [t["specific"] for t in tested]}), flush=True)
