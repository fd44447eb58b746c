"""The fresh zoos s2750 and s2760 under v2b, from committed files: their bench records (../heldout-v5) with
`signal_strong_log_failure` added from v2b's signal step rerun alone on each model (`fresh.jsonl`; the 0.1 step's
features are unchanged by v2b). Writes fresh-composite-s2750.json and -s2760.json, for

    python docs/bench/signal-strong/fresh_look.py
    modelscan-bd bench-pool docs/bench/signal-strong/fresh-composite-s2750.json \
        docs/bench/signal-strong/fresh-composite-s2760.json \
        --calibration docs/bench/signal-strong/classifier-candidate.json --without signal_strong_log_failure \
        --out docs/bench/signal-strong/fresh-pool
"""
import json
import math
from pathlib import Path

here = Path(__file__).parent
strong = {}
for line in (here / "fresh.jsonl").read_text().splitlines():
    d = json.loads(line)
    strong[d["model"]] = d
for z in (2750, 2760):
    run = json.loads((here.parent / "heldout-v5" / f"results-s{z}.json").read_text())
    records = []
    for r in run["records"]:
        d = strong[f"cifar10-heldout-s{z}/{r['name']}"]
        assert (d["label"], d["success"]) == (r["signal_label"], round(r["features"]["signal_success"], 4)), r["name"]
        # v2b's `verdict._log_failure` (in v2b.patch, not on main), written out so this runs without the patch
        f = {**r["features"], "signal_strong_log_failure": -math.log10(1 - d["strong"] + 0.005)}
        records.append({**r, "features": f})
    run["records"] = records
    for stale in ("metrics", "markdown"):  # the scan's own: bench-pool recomputes them
        run.pop(stale, None)
    (here / f"fresh-composite-s{z}.json").write_text(json.dumps(run))
    print(z, len(records), "records")
