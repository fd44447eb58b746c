"""Fit calibration/merging.json on the seed-0 zoo's variant and merge rows (probe.py output)."""
import json, sys
from modelscan_bd.gate_calibration import fit_merging_calibration, fitting_summary
from modelscan_bd.bench import manifest_hash
from pathlib import Path
rows = []
for line in open("/work/zoo-gate2/exp/s0.jsonl"):
    r = json.loads(line)
    if r["acc"] < 0.5 * 0.998 or ("@" not in r["item"] and False):  # broken variants carry no evidence (the gate's usable rule)
        continue
    rows.append({"features": {k: v for k, v in r["feat"].items()}, "asr": r["asr"], "item": r["item"]})
zoo = Path("/work/zoo-gate2/zoo-s0")
desc = (f"fitted on {len(rows)} amplified variants and task-arithmetic merges of the merging zoo seed 0 "
        f"(manifest {manifest_hash(zoo)}; 6 clean, 9 backdoored candidates); label: the carried backdoor's ASR >= 0.5; command: python /work/zoo-gate2/exp/fit.py (gate_calibration.fit_merging_calibration)")
cal = fit_merging_calibration(rows, desc)
print(cal.to_json()); print(fitting_summary(rows, cal))
from modelscan_bd.verdict import probability
for r in rows:
    print(r["item"][:60].ljust(60), round(r["asr"] or 0, 2), round(probability(r["features"], cal)[0], 3))
if len(sys.argv) > 1:
    Path(sys.argv[1]).write_text(cal.to_json())
