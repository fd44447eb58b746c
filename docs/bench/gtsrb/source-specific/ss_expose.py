"""Prototype (not shipped): does exposure reveal a source-specific backdoor as one *class* moving to the
target? For each exposure run of a `standard` scan, on the scan's held-out clean images, per true class c
(at least 3 images) and label t != c: the share of c's images predicted t minus the mean share of the other
classes' images predicted t (an all-to-one collapse moves every class alike). Printed: the largest such
excess per run as (excess, c, t), for the unlearning and the perturbation runs.

    python docs/bench/gtsrb/source-specific/ss_expose.py zoo/gtsrb-ss600b,zoo/gtsrb-ss620 > ss_expose.txt
"""
import json, sys
from pathlib import Path
import torch
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.gate import load_member
from modelscan_bd.exposure import expose
from modelscan_bd.scan import BUDGET_SETTINGS

torch.set_num_threads(2)
clean_npz = sys.argv[2] if len(sys.argv) > 2 else None
for zoo in sys.argv[1].split(","):
    ZOO = Path(zoo)
    man = json.loads((ZOO / "manifest.json").read_text())
    for m in man["models"]:
        truth = json.loads((ZOO / m["truth_dir"] / "groundtruth.json").read_text())
        src = (truth.get("params") or {}).get("source")
        adapter = load_member(str(ZOO / m["path"]), lambda s: None).adapter
        clean = load_clean_data(clean_npz or ZOO / "clean-data.npz", adapter, budget=4000 if clean_npz else 500,
                                seed=0)
        torch.manual_seed(0)
        res = expose(adapter, clean, 0, BUDGET_SETTINGS["standard"], lambda s: None)
        x, y = clean.holdout_images, clean.holdout_labels
        C = adapter.num_classes
        cnt = torch.bincount(y, minlength=C).float()
        ok = cnt >= 3
        stats = []
        for run in res.runs:
            if run.model is None:
                continue
            with torch.no_grad():
                p = torch.cat([run.model(b).argmax(1) for b in x.split(500)])
            conf = torch.zeros(C, C)
            conf.index_put_((y, p), torch.ones(len(y)), accumulate=True)
            share = conf / cnt.clamp(min=1)[:, None]
            share[~ok] = 0
            tot = share[ok].sum(0)
            others = (tot[None, :] - share) / (ok.sum() - 1)
            excess = share - others
            excess.fill_diagonal_(-1)
            excess[~ok] = -1
            v, i = excess.flatten().max(0)
            c, t = divmod(int(i), C)
            stats.append((run.method, round(float(v), 3), c, t))
        ex = [s[1] for s in stats]
        unl = [s for s in stats if s[0] == 'clean-unlearning']
        print(f"{ZOO.name:14} {m['name']:28} tgt {str(m['target']):>4} src {str(src):>4} "
              f"mean {sum(ex)/len(ex):.3f} max {max(ex):.3f} unlearn {[(s[1], s[2], s[3]) for s in unl]} "
              f"perturb {[(s[1], s[2], s[3]) for s in stats if s[0] != 'clean-unlearning']}", flush=True)
