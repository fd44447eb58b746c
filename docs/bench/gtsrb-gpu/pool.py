"""Pool the GPU zoos' bench records (all-to-all s900 and s902, clean-only s901) and score them with
the bench's own metrics under the shipped standard calibration, as 43-class models:
`python pool.py results-a2a-s900.json results-a2a-s902.json results-wanet-s901.json`."""
import json
import sys

from modelscan_bd.bench import metrics
from modelscan_bd.verdict import load_calibration, probability

cal = load_calibration(budget="standard")
records = []
for path in sys.argv[1:]:
    zoo = path.removeprefix("results-").removesuffix(".json")
    records += [{**r, "name": f"{zoo}/{r['name']}"} for r in json.load(open(path))["records"]]
m = metrics(records, cal, 43)
out = {"calibration": cal.version,
       "per_model": [{"name": r["name"], "asr": r["asr"], "p": round(probability(r["features"], cal, 43)[0], 3),
                      "neural_cleanse": round(r["neural_cleanse"]["score"], 3)} for r in records],
       "pooled": {k: m[k] for k in ("models", "backdoored", "clean", "auroc", "tpr", "fpr", "tpr_at_5fpr",
                                    "seconds_per_model")}}
out["pooled"]["neural_cleanse"] = {k: m["neural_cleanse"][k] for k in ("auroc", "tpr", "fpr", "seconds_per_model")
                                   if k in m["neural_cleanse"]}
out["pooled"]["ebyd_variance"] = {k: m["ebyd_variance"][k] for k in ("auroc", "tpr", "fpr") if k in m["ebyd_variance"]}
print(json.dumps(out, indent=1))
