"""s2730 under v5, from committed files: v5 promotes a label only where v4 did (same first start and
sweep) and its trigger passes the bar; `dev-v5.jsonl` scanned those four models with v5. So v5's
records are v3's, except where v5 promoted (there v4's record, whose features the v5 scan equals).

    python docs/bench/trigger-sweep/s2730_v5.py   # writes results-s2730-v5-composite.json
    modelscan-bd bench-pool docs/bench/trigger-sweep/results-s2730-v5-composite.json --out RUN
"""
import json
from pathlib import Path

here = Path(__file__).parent
v3 = json.loads((here / "results-s2730-v3.json").read_text())
v4 = {m["name"]: m for m in json.loads((here / "results-s2730-v4.json").read_text())["records"]}
dev = {}
for line in (here / "dev-v5.jsonl").read_text().splitlines():
    d = json.loads(line)
    if "lc-s2730" in d["model"]:
        dev[d["model"].split("/")[-1]] = d
records = []
for m in v3["records"]:
    d = dev.get(m["name"])
    if d is not None:
        promoted = d["trigger"]["sweep"]["promoted"] is not None
        m = v4[m["name"]] if promoted else m
        assert m["features"] == d["features"], m["name"]
        print(m["name"], "v5 promoted: v4's record" if promoted else "v5 did not promote: v3's record")
    records.append(m)
v3["records"] = records
# v3's metrics and Markdown do not describe these records: bench-pool recomputes them
for stale in ("metrics", "markdown"):
    v3.pop(stale, None)
(here / "results-s2730-v5-composite.json").write_text(json.dumps(v3))
