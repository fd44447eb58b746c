"""Prototype (not shipped): Clean Unlearning with class-balanced cross-entropy (weights 1/count over the
exposure images) against the shipped plain cross-entropy, on a zoo: consensus label, concentration and the
three labels with the most mean share over the 3 unlearning runs of a `standard` scan.

    python docs/bench/gtsrb20/balanced_unlearn.py zoo/gtsrb20-s720 > docs/bench/gtsrb20/balanced_unlearn.txt
"""
import dataclasses, json, sys, types
from pathlib import Path
import torch
import torch.nn.functional as F
import modelscan_bd.exposure as ex
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.gate import load_member
from modelscan_bd.scan import BUDGET_SETTINGS
torch.set_num_threads(2)
settings = dataclasses.replace(BUDGET_SETTINGS["standard"], methods=(ex.UNLEARN,))
for zoo in sys.argv[1].split(","):
    ZOO = Path(zoo)
    for m in json.loads((ZOO / "manifest.json").read_text())["models"]:
        adapter = load_member(str(ZOO / m["path"]), lambda s: None).adapter
        clean = load_clean_data(ZOO / "clean-data.npz", adapter, budget=500, seed=0)
        cnt = torch.bincount(clean.exposure_labels, minlength=adapter.num_classes).float()
        w = torch.where(cnt > 0, 1.0 / cnt.clamp(min=1), torch.zeros_like(cnt))
        w = w / w[cnt > 0].mean()
        out = []
        for mode in ("plain", "balanced"):
            if mode == "balanced":
                ex.F = types.SimpleNamespace(cross_entropy=lambda a, b, **k: F.cross_entropy(a, b, weight=w, **k))
            else:
                ex.F = F
            res = ex.expose(adapter, clean, 0, settings)
            c = res.consensus()
            out.append(f"{mode}: label {c['label']:>2} conc {c['concentration']:.2f} agree {c['agreement']:.2f} "
                       f"by_share {[(k, round(v, 2)) for k, v in c['by_share'][:3]]}")
        ex.F = F
        print(f"{ZOO.name:14} {m['name']:26} tgt {str(m['target']):>4} | " + " | ".join(out), flush=True)
