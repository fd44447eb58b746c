"""What the v4 `fast` classifier file (2026-12-05) changes in the merge gate's committed decisions.

Only a candidate's own scan is judged by `classifier-fast.json`; its variants (merging.json), its trigger
inverted against the base and the leave-one-out attribution are unchanged. From each committed bench
record's own-scan features, the own verdict under the file before (OLD, from git) and the shipped one,
and the decision that follows where the record shows it (a block resting on the own scan alone, a pass
whose own scan turns SUSPICIOUS or BACKDOORED). Nothing is rescanned; a newly flagged own scan never had
its trigger checked on the base, so "->block?" is an upper bound.

    git show 392bc11:modelscan_bd/calibration/classifier-fast.json > /tmp/old-fast.json
    python docs/bench/merging/own_scan_shift.py /tmp/old-fast.json
"""
import glob
import json
import sys
from collections import Counter

from modelscan_bd import verdict

OWN = "its own scan:"
old, new = verdict.load_calibration(sys.argv[1]), verdict.load_calibration(budget="fast")
counts = Counter()
for path in sorted(glob.glob("docs/bench/merging/results-*.json")):
    for rec in json.load(open(path)).get("records", []):
        for c in rec.get("candidates", []):
            if not c.get("own_features"):
                continue
            was, now = (verdict.status_for(verdict.probability(c["own_features"], cal, 10)[0], cal, False, 10)
                        for cal in (old, new))
            kind = "backdoored" if c["backdoored"] else "clean"
            own_only = not [r for r in c["reasons"] if not r.startswith(OWN)]
            if was == now:
                change = "unchanged"
            elif c["verdict"] == "pass" and now == "SUSPICIOUS":
                change = "pass->warn"
            elif c["verdict"] in ("pass", "warn") and now == "BACKDOORED":
                change = c["verdict"] + "->block?"
            elif c["verdict"] == "block" and was == "BACKDOORED" and own_only:
                change = "block->" + ("warn" if now == "SUSPICIOUS" else "pass")
            elif c["verdict"] == "warn" and was == "SUSPICIOUS" and own_only and now == "CLEAN":
                change = "warn->pass"
            else:
                change = f"{c['verdict']} stays"
            counts[(kind, change)] += 1
for (kind, change), n in sorted(counts.items()):
    print(f"{kind:10s} {change:16s} {n}")
