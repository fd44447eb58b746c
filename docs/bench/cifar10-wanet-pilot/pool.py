"""Pool the WaNet pilot zoos' records and score them with the bench's own metrics under the
shipped standard calibration: `python pool.py results-seed300.json results-seed301.json ...`.
Prints JSON: all models, and only the WaNet models at the zoo's usual 0.9 bar."""
import json
import sys

from modelscan_bd.bench import metrics
from modelscan_bd.verdict import load_calibration, probability

cal = load_calibration(budget="standard")
records = []
for path in sys.argv[1:]:
    seed = path.split("seed")[-1].split(".")[0]
    for r in json.load(open(path))["records"]:
        records.append({**r, "name": f"s{seed}-{r['name']}"})
at_bar = [r for r in records if not r["backdoored"] or r["asr"] >= 0.9]
out = {"calibration": cal.version,
       "per_model": [{"name": r["name"], "target": r["target"], "asr": r["asr"],
                      "p": round(probability(r["features"], cal)[0], 3)} for r in records]}
for name, rs in (("all", records), ("wanet_at_0.9", at_bar)):
    m = metrics(rs, cal)
    out[name] = {k: m[k] for k in ("models", "backdoored", "clean", "auroc", "tpr", "fpr", "target_accuracy",
                                   "seconds_per_model")}
    out[name]["neural_cleanse_auroc"] = m["neural_cleanse"]["auroc"]
    out[name]["ebyd_variance_auroc"] = m["ebyd_variance"]["auroc"]
print(json.dumps(out, indent=1))
