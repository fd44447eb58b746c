"""s0 TA merges: lean scan, then the merge trigger's success on the merge, the base, and each leave-one-out merge."""
import json, os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from modelscan_bd.gate import load_member, with_state, scan_summary, trigger_success
from modelscan_bd.gate_config import parse_config
from modelscan_bd.gate_bench import groups_for
from modelscan_bd.merging import merge_state_dicts
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.scan import ScanConfig, scan_classifier
zoo = Path(sys.argv[1]); meth = sys.argv[2] if len(sys.argv) > 2 else "task_arithmetic"
man = json.loads((zoo / "manifest.json").read_text()); E = {m["name"]: m for m in man["models"]}
c = [m["name"] for m in man["models"] if m.get("role") == "candidate" and not m["backdoored"]]
b = [m["name"] for m in man["models"] if m.get("role") == "candidate" and m["backdoored"]]
q = lambda m: None
base = load_member(str(zoo / "models/base"), q); bs = base.state
clean = load_clean_data(str(zoo / "clean-data.npz"), base.adapter, budget=150, seed=0)
cfg = ScanConfig(budget="fast", seed=0, clean_budget=150, detectors=["exposure-collapse", "trigger-recovery"])
states = {n: load_member(str(zoo / E[n]["path"]), q).state for n in c + b}
W = {"task_arithmetic": 0.5, "ties": 1.0, "dare_linear": 0.5}[meth]
def merged(names):
    cf = parse_config({"models": [{"model": n, "parameters": {"weight": W, "density": 0.5}} for n in names],
                       "base_model": "base", "merge_method": meth})
    return with_state(base.adapter, merge_state_dicts(bs, [states[n] for n in names], cf.spec, seed=0), "m")
for g in groups_for(c, b, 3, 2):
    t0 = time.perf_counter()
    ad = merged(g)
    o = scan_classifier(ad, clean, cfg, name="m")
    s = scan_summary(o.report, o.context, ad, clean)
    lab = s["trigger"]["label"]
    allv = trigger_success(ad, s["_trigger"], lab, clean)
    onb = trigger_success(base.adapter, s["_trigger"], lab, clean)
    loo = {n: round(trigger_success(merged([x for x in g if x != n]), s["_trigger"], lab, clean), 3) for n in g}
    print(json.dumps({"group": g, "method": meth, "features": s["features"], "trigger": s["trigger"], "acc": s["clean_accuracy"],
                      "truth_target": [E[n]["target"] for n in g if E[n]["backdoored"]], "with_all": round(allv, 3),
                      "on_base": round(onb, 3), "loo": loo, "sec": round(time.perf_counter() - t0, 1)}), flush=True)
