"""Probe: scan states of a merging zoo, print features, detector labels, timing, true ASR."""
import json, sys, time, os
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
from modelscan_bd.gate import load_member, with_state
from modelscan_bd.merging import task_vector, scaled, merge_state_dicts, MergeSpec
from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.scan import ScanConfig, scan_classifier
from modelscan_bd.verdict import extract_features
from modelscan_bd.zoo.save import load_attack

zoo = Path(sys.argv[1]); which = sys.argv[2]
budget = os.environ.get("BUDGET", "fast")
if (zoo / "manifest.json").exists():
    E = {m["name"]: m for m in json.loads((zoo / "manifest.json").read_text())["models"]}
else:
    E = {p.name: {"name": p.name, "path": f"models/{p.name}", "truth_dir": f"truth/{p.name}", "backdoored": not p.name.startswith("clean"),
                  "target": json.loads((zoo/"truth"/p.name/"groundtruth.json").read_text()).get("target") if (zoo/"truth"/p.name/"groundtruth.json").exists() else None}
         for p in (zoo / "models").iterdir()}
q = lambda m: None
base = load_member(str(zoo / "models/base"), q)
bs = base.state
clean = load_clean_data(os.environ.get("CLEAN", str(zoo / "clean-data.npz")), base.adapter, budget=150, seed=0)
with np.load(os.environ.get("CLEAN", str(zoo / "clean-data.npz"))) as npz:
    X = torch.from_numpy(npz["images"]).permute(0, 3, 1, 2).float() / 255
    Y = torch.from_numpy(npz["labels"]).long()
dets = os.environ.get("DETS"); dets = dets.split(",") if dets else None
cfg = ScanConfig(budget=budget, seed=0, clean_budget=150, detectors=dets)
taus = {}
def tau(n):
    if n not in taus:
        taus[n] = task_vector(bs, load_member(str(zoo / E[n]["path"]), q).state)
    return taus[n]
def asr(adapter, n):
    if not E[n]["backdoored"]: return None
    a = load_attack(zoo / E[n]["truth_dir"]); keep = a.asr_mask(Y)
    return float((adapter.predict(a.apply_trigger(X[keep])) == a.asr_target(Y[keep])).float().mean())
def combo(coefs):  # coefs: {name: coef}
    out = {k: v.clone() for k, v in bs.items()}
    for n, c in coefs.items():
        for k, t in tau(n).items():
            out[k] = out[k] + c * t
    return out
for item in which.split(";"):
    # item like "badmerging-02:1,clean-04:0.5,clean-05:0.5" or "own:clean-00"
    method = None
    if "@" in item:
        method, item = item.split("@")
    coefs = {p.split(":")[0]: float(p.split(":")[1]) for p in item.split(",")}
    if method:
        from modelscan_bd.gate_config import parse_config
        names = list(coefs)
        cfgm = parse_config({"models": [{"model": n, "parameters": {"weight": coefs[n], "density": float(os.environ.get("DENS", "0.5"))}} for n in names],
                            "base_model": "base", "merge_method": method})
        st = merge_state_dicts(bs, [combo({n: 1.0}) for n in names], cfgm.spec, seed=0)
        item = method + "@" + item
    else:
        st = combo(coefs)
    ad = with_state(base.adapter, st, item)
    bd = [n for n in coefs if E[n]["backdoored"]]
    t0 = time.perf_counter()
    rep = scan_classifier(ad, clean, cfg, name=item)
    r = rep.context.results
    f = extract_features(r)
    tr = r.get("trigger-recovery") or {}
    with torch.no_grad():
        acc = float((ad.predict(X) == Y).float().mean())
    out = {"item": item, "acc": round(acc, 4), "p": round(rep.report["verdict"]["probability"], 3), "status": rep.report["verdict"]["status"],
           "truth_target": E[bd[0]]["target"] if bd else None, "asr": asr(ad, bd[0]) if bd else None,
           "collapse": (r.get("exposure-collapse") or {}).get("label"), "runner": (r.get("exposure-collapse") or {}).get("runner_up"),
           "mmbd": (r.get("mmbd") or {}).get("target"), "trig_label": tr.get("label"), "trig_shape": tr.get("shape"),
           "feat": {k: (None if v is None else round(v, 3)) for k, v in f.items()},
           "steps": rep.report["timing"]["steps"], "sec": round(time.perf_counter() - t0, 1),
           "incomplete": rep.report["verdict"]["incomplete_reasons"][:1]}
    print(json.dumps(out), flush=True)
