"""Whether the gate's second start (GateOptions.restart_margins, gate.settled) can be skipped when the first start is
far from every cut: re-applies gate.settled and gate.candidate_trigger to the seed study's records
(candidate-trigger-seeds.jsonl, three seeds per clean and BadMerging candidate, the peers of each merge group as one
peer) for every ordered pair of seeds, and counts the second starts skipped and the verdicts that differ from always
running both. Also prints the seed-to-seed changes the margins are read from (half their 95th percentile).
Usage: candidate-trigger-restarts.py [candidate-trigger-seeds.jsonl]"""
import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

from modelscan_bd.gate import GateOptions, candidate_trigger, settled

SUCCESS_NEEDED = 0.8  # the merging calibration's holdout_success_threshold
path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("candidate-trigger-seeds.jsonl")
records = defaultdict(dict)
for line in open(path):
    r = json.loads(line)
    records[(r["zoo"], r["name"], r["attack"])][r["seed"]] = r


def start(r, group):
    return {"label": r["label"], "shape": "patch", "size": r["size"], "log_ratio": r["log_ratio"], "seconds": 0.0,
            "on_model": r["on_model"], "on_base": r["on_base"], "on_peers": {"peers": r["peers_max"][group]}}


def p95(values):
    return sorted(values)[int(0.95 * len(values))]


changes = defaultdict(list)
for rs in records.values():
    for a, b in itertools.combinations(sorted(rs), 2):
        for key in ("log_ratio", "on_model", "on_base"):
            changes[key].append(abs(rs[a][key] - rs[b][key]))
        changes["peers"] += [abs(x - y) for x, y in zip(rs[a]["peers_max"], rs[b]["peers_max"])]
print(json.dumps({"half_p95_change": {k: round(p95(v) / 2, 3) for k, v in changes.items()}}))

opt = GateOptions()
for first, second in itertools.permutations(range(3), 2):
    row = {"first": first, "second": second, "instances": 0, "skipped": 0, "clean_flagged_both": 0,
           "clean_flagged_adaptive": 0, "badmerging_flagged_both": 0, "badmerging_flagged_adaptive": 0, "changed": []}
    for (zoo, name, attack), rs in sorted(records.items()):
        if first not in rs or second not in rs:
            continue
        for g in range(len(rs[first]["peers_max"])):
            one, two = [start(rs[first], g)], [start(rs[first], g), start(rs[second], g)]
            both = candidate_trigger(two, opt, SUCCESS_NEEDED)
            skip = settled(one, opt, SUCCESS_NEEDED)
            used = candidate_trigger(one, opt, SUCCESS_NEEDED) if skip else both
            flag_both, flag_used = both["planted"] or both["specific"], used["planted"] or used["specific"]
            kind = "badmerging" if attack else "clean"
            row["instances"] += 1
            row["skipped"] += skip
            row[f"{kind}_flagged_both"] += flag_both
            row[f"{kind}_flagged_adaptive"] += flag_used
            if flag_both != flag_used:
                row["changed"].append([zoo, name, g])
    print(json.dumps(row))
