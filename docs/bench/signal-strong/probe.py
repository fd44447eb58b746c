"""Probe: signal-trigger's best-label success and gap at amplitude 0.1 (shipped) and at SIG's own 40/255.
    python probe.py ZOO/models/NAME ...   (prints one JSON line per model)"""
import json, sys
from pathlib import Path
from modelscan_bd.scan import ScanConfig, scan
from modelscan_bd.detectors import signal as S

def best(rates, k):
    axis, label = max(((a, t) for a in S.AXES for t in range(k)), key=lambda at: rates[at[0]][at[1]])
    succ = rates[axis][label]
    ru = max((rates[a][t] for a in S.AXES for t in range(k) if t != label), default=0.0)
    return label, round(succ, 4), round(succ - ru, 4)

for arg in sys.argv[1:]:
    path = Path(arg); zoo = path.parent.parent
    out = scan(str(path), ScanConfig(budget="standard", seed=0, clean_data=str(zoo / "clean-data.npz"),
                                     detectors=["signal-trigger"]))
    ctx, model = out.context, out.adapter.model
    clean = ctx.clean; k = len(out.adapter.labels)
    truth = json.loads((zoo / "truth" / path.name / "groundtruth.json").read_text())
    row = {"model": f"{zoo.name}/{path.name}", "attack": truth.get("attack"), "hard": truth.get("hard"),
           "target": truth.get("target")}
    for amp in (0.1, 40 / 255):
        sig = S.invert_signals(model, clean.exposure_images, clean.exposure_labels, k, S.SETTINGS["standard"],
                               ctx.generator(salt=15), amplitude=amp)
        rates = S.signal_success(model, sig, clean.holdout_images, clean.holdout_labels)
        row[f"a{amp:.3f}"] = best(rates, k)
    print(json.dumps(row), flush=True)
