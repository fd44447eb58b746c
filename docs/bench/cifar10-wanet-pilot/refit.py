"""Would adding the seed-300 WaNet pilot to the fitting split help? Offline, from committed records."""
import json
from modelscan_bd.bench import split, calibrate, metrics
from modelscan_bd.verdict import load_calibration

cif = json.load(open("../cifar10/results.json"))
fit, held = split(cif["records"], ["blended"], [14, 15, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29])
P = "results-seed%d.json"
pil = {s: json.load(open(P % s))["records"] for s in (300, 301, 302)}
shipped = load_calibration(budget="standard")
def show(name, cal):
    mh = metrics(held, cal); mp = metrics(pil[301] + pil[302], cal)
    print(f"{name:28} cifar-held auroc {mh['auroc']:.3f} tpr {mh['tpr']:.3f} fpr {mh['fpr']:.3f} tgt {mh['target_accuracy']:.3f}"
          f" | pilot301+302 auroc {mp['auroc']:.3f} tpr {mp['tpr']:.3f} fpr {mp['fpr']:.3f}")
print(len(fit), len(held))
show("shipped", shipped)
show("refit 41 (check)", calibrate(fit, "x", "x", "standard"))
show("refit 41 + pilot300", calibrate(fit + pil[300], "x", "x", "standard"))
