"""Diagnosis of the `standard` refit (NOTES.md, "Left open"): the combiner's log loss and AUROC over an
L2 grid, cross-validated by training seed (a seed's clean and backdoored models leave together) on the
protocol's fitting split only.

    python docs/bench/cifar10-v4/cv_l2.py docs/bench/cifar10-v4/results-standard.json
"""
import json
import sys

from modelscan_bd import bench, verdict

HELD_OUT_SEEDS = [1314, 1315, 1316, 1317, 1318, 1319, 1324, 1325, 1326, 1327, 1328, 1329]  # PROTOCOL.md

records = json.load(open(sys.argv[1]))["records"]
fit, _ = bench.split(records, ["blended"], HELD_OUT_SEEDS)
features = list(verdict.FEATURES)
for l2 in [0.3, 1, 3, 10, 30, 100]:
    probs, labels = [], []
    for seed in sorted({r["seed"] for r in fit}):
        train = [r for r in fit if r["seed"] != seed]
        m, s, w, b, fill = verdict.fit_logistic([r["features"] for r in train], [int(r["backdoored"]) for r in train],
                                                features, l2=l2)
        cal = verdict.Calibration("cv", False, "", features, m, s, w, b, fill, 0.5, 0.25, {})
        for r in (r for r in fit if r["seed"] == seed):
            probs.append(verdict.combiner_probability(r["features"], cal)[0])
            labels.append(int(r["backdoored"]))
    print(f"l2={l2:<5} cv log loss {bench.log_loss(probs, labels):.3f}  cv AUROC {bench.auroc(probs, labels):.3f}")
