"""Which candidate a collapsed task-arithmetic merge needs (seed-7 zoo): per-candidate leave-one-out at the
bench's weight and with the total weight kept, and each candidate's task vector alone at lambda 1 and 1.5.
Output: (clean accuracy, most-predicted label, its share). Usage: collapse-probe.py ZOO name,name,name"""
import sys, torch
from pathlib import Path
from modelscan_bd.gate import load_member, with_state
from modelscan_bd.merging import merge_state_dicts, task_vector, scaled
from modelscan_bd.gate_config import parse_config
import numpy as np
zoo = Path(sys.argv[1]); group = sys.argv[2].split(",")
base = load_member(str(zoo / "models/base"), lambda m: None)
bs = base.state
st = {n: load_member(str(zoo / "models" / n), lambda m: None).state for n in group}
with np.load(zoo / "clean-data.npz") as z:
    x = torch.from_numpy(z["images"]).permute(0, 3, 1, 2).float() / 255; y = torch.from_numpy(z["labels"]).long()
def stats(state):
    p = with_state(base.adapter, state, "m").predict(x)
    c = torch.bincount(p, minlength=10)
    return round(float((p == y).float().mean()), 3), int(c.argmax()), round(float(c.max()) / len(p), 3)
def ta(names, w):
    cfg = parse_config({"models": [{"model": n, "parameters": {"weight": w}} for n in names], "base_model": "base",
                        "merge_method": "task_arithmetic"})
    return merge_state_dicts(bs, [st[n] for n in names], cfg.spec, seed=0)
print("all w=0.5", stats(ta(group, 0.5)))
for n in group:
    rest = [m for m in group if m != n]
    print("without", n, "w=0.5", stats(ta(rest, 0.5)), "w=0.75 (total kept)", stats(ta(rest, 0.75)))
    tau = task_vector(bs, st[n])
    for lam in (1.0, 1.5):
        print("   ", n, "alone lambda", lam, stats(scaled(bs, tau, lam, 1.0)))
