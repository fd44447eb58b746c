"""Step 5 of PROTOCOL-signal-at-fast.md: what the candidate `fast` (signal and warp steps on, its own file)
moved in the merge gate on the merging zoo seed 1, against the shipped `fast` the same day.

Reads the two committed bench results (`results-merge-{new,ship}.json`) and the base model's scan from each
run (`base-scans.json`, copied from the runs' scan caches). Then rescoring: each candidate's own-scan
features from the candidate run (signal and warp included) under the shipped `fast` file (which weights
neither), the candidate file and the `standard` file, to show which part of the file moves the verdicts.

    .venv/bin/python docs/bench/heldout-fast/signal-at-fast/merging/gate_side_effect.py > .../gate_side_effect.txt
"""
import json
import subprocess
import tempfile
from pathlib import Path

from modelscan_bd.verdict import load_calibration, probability, status_for

HERE = Path(__file__).parent
runs = {r: json.loads((HERE / f"results-merge-{r}.json").read_text()) for r in ("ship", "new")}
base = json.loads((HERE / "base-scans.json").read_text())
with tempfile.TemporaryDirectory() as tmp:  # the shipped file as of the test, from git
    shipped_file = Path(tmp) / "classifier-fast.json"
    shipped_file.write_text(subprocess.run(["git", "show", "a2eac44:modelscan_bd/calibration/classifier-fast.json"],
                                           capture_output=True, text=True, check=True).stdout)
    files = {"shipped fast": load_calibration(str(shipped_file)),
             "candidate fast": load_calibration(str(HERE.parent / "calibration-fast-saf.json")),
             "standard": load_calibration(budget="standard")}

print("Gate decisions on merging-s1 (11 groups x 3 methods; 24 clean and 9 backdoored candidate instances "
      "per method)\n")
print("| run | clean blocked | clean warned | backdoored blocked | clean-only groups exiting 1 | base scan |")
print("|---|---|---|---|---|---|")
for r, res in runs.items():
    cands = [c for rec in res["records"] for c in rec["candidates"]]
    clean = [c for c in cands if not c["backdoored"]]
    bd = [c for c in cands if c["backdoored"]]
    clean_only = [rec for rec in res["records"] if not any(c["backdoored"] for c in rec["candidates"])]
    print(f"| {r} | {sum(c['verdict'] == 'block' for c in clean)}/{len(clean)} | "
          f"{sum(c['verdict'] == 'warn' for c in clean)}/{len(clean)} | "
          f"{sum(c['verdict'] == 'block' for c in bd)}/{len(bd)} | "
          f"{sum(rec['exit_code'] == 1 for rec in clean_only)}/{len(clean_only)} | "
          f"{base[r]['status']} (p {base[r]['probability']}) |")

print("\nOwn scans of the candidate run, rescored (p; * = BACKDOORED under that file's cut for 10 classes)\n")
print("| candidate | backdoored | signal gap | signal success | " + " | ".join(files) + " |")
print("|---|---|---|---|" + "---|" * len(files))
own = {}
for rec in runs["new"]["records"]:
    for c in rec["candidates"]:
        own[c["name"]] = (c["backdoored"], c["own_features"])
rows = sorted(own.items()) + [("base", (False, base["new"]["features"]))]
for name, (bd, f) in rows:
    cells = []
    for cal in files.values():
        p = probability(f, cal, 10)[0]
        cells.append(f"{p:.3f}{'*' if status_for(p, cal, False, 10) == 'BACKDOORED' else ''}")
    print(f"| {name} | {bd} | {f['signal_gap']:.3f} | {f['signal_success']:.3f} | " + " | ".join(cells) + " |")
print("\nBACKDOORED cuts for 10 classes: " + ", ".join(f"{k} {cal.cuts_for(10)[0]:.3f}" for k, cal in files.items()))
