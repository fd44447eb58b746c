"""Prototype: differential trigger inversion on task-arithmetic merges of a merging zoo
(merge as model, base as reference), all labels, patch + blend; held-out success through
merge and base; log size ratio per label; truth beside it."""
import json, sys, time, math, statistics
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.gate import load_member, with_state
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.gate_bench import groups_for, METHOD_SETTINGS
from modelscan_bd.gate_config import parse_config
from modelscan_bd.merging import merge_state_dicts
from modelscan_bd.inversion import invert, Slot, PATCH, BLEND, InversionSettings, success_rate

zoo = Path(sys.argv[1]); method = sys.argv[2] if len(sys.argv) > 2 else "task_arithmetic"
W = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
man = json.loads((zoo / "manifest.json").read_text()); E = {m["name"]: m for m in man["models"]}
cands = [m for m in man["models"] if m.get("role") == "candidate"]
clean_names = [m["name"] for m in cands if not m["backdoored"]]; bd = [m["name"] for m in cands if m["backdoored"]]
base = load_member(str(zoo / "models/base"), lambda m: None)
clean = load_clean_data(str(zoo / "clean-data.npz"), base.adapter, budget=150, seed=0)
states = {}
def st(n):
    if n not in states: states[n] = load_member(str(zoo / E[n]["path"]), lambda m: None).state
    return states[n]
def merged(group):
    w, d = METHOD_SETTINGS[method]
    cfg = parse_config({"models": [{"model": n, "parameters": {"weight": w, "density": d}} for n in group],
                        "base_model": "base", "merge_method": method})
    return with_state(base.adapter, merge_state_dicts(base.state, [st(n) for n in group], cfg.spec, seed=0), "m")
K = man["num_classes"]
for group in groups_for(clean_names, bd, 3, 2):
    t0 = time.time()
    m = merged(group)
    g = torch.Generator().manual_seed(0)
    slots = [Slot(k, s) for k in range(K) for s in (PATCH, BLEND)]
    inv = invert(m.model, clean.exposure_images, clean.exposure_labels, slots, InversionSettings(steps=150, images_per_slot=12), g,
                 reference=base.adapter.model, reference_weight=W)
    rows = []
    for t in inv:
        on_m = success_rate(m.model, t, clean.holdout_images, clean.holdout_labels)
        on_b = success_rate(base.adapter.model, t, clean.holdout_images, clean.holdout_labels)
        rows.append((t.slot.target, t.slot.shape, t.effective_size(), on_m, on_b))
    out = []
    for shape in (PATCH, BLEND):
        sub = [r for r in rows if r[1] == shape]
        for r in sub:
            others = [o[2] for o in sub if o[0] != r[0]]
            lr = math.log(max(statistics.median(others), 1e-4) / max(r[2], 1e-4))
            out.append((round(lr, 2), r[0], shape, round(r[2], 4), round(r[3], 2), round(r[4], 2)))
    out.sort(reverse=True)
    truth = [E[n]["target"] for n in group if E[n]["backdoored"]]
    print(json.dumps({"group": group, "truth": truth, "top": out[:4], "sec": round(time.time() - t0, 1)}), flush=True)
