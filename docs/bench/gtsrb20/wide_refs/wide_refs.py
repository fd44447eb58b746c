"""Prototype: trigger recovery with more reference labels beyond 10 classes.
Runs exposure + mmbd (the scan's own code), then inverts candidates + R refs in one batch
and saves every label's sizes/holdout success so several statistics can be compared offline."""
import json
import sys
import time
from pathlib import Path

import torch

from modelscan_bd.scan import ScanConfig, scan
from modelscan_bd.detectors.trigger import SETTINGS, TriggerRecoveryDetector
from modelscan_bd.inversion import BLEND, PATCH, UNTARGETED, Slot, invert, success_rate
from modelscan_bd.bench import read_manifest, read_truth

zoo, out, R = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
budget = sys.argv[4] if len(sys.argv) > 4 else "standard"
torch.set_num_threads(2)
done = {json.loads(line)["name"] for line in out.read_text().splitlines()} if out.exists() else set()
for entry in read_manifest(zoo)["models"]:
    if entry["name"] in done:
        continue
    truth = read_truth(zoo, entry)
    t0 = time.perf_counter()
    o = scan(str(zoo / entry["path"]), ScanConfig(budget=budget, seed=0, clean_data=str(zoo / "clean-data.npz"),
                                                   detectors=["exposure-collapse", "mmbd"]))
    ctx, model = o.context, o.adapter
    C = model.num_classes
    cands = TriggerRecoveryDetector._candidates(ctx, C)
    settings, _ = SETTINGS[budget]
    g = ctx.generator(salt=20)
    others = [k for k in range(C) if k not in cands]
    refs = [others[i] for i in torch.randperm(len(others), generator=g)[:R].tolist()]
    labels = cands + refs
    slots = [Slot(t, s) for t in labels for s in (PATCH, BLEND)] + [Slot(UNTARGETED, PATCH)]
    torch.manual_seed(0)
    inv = invert(model.model, ctx.clean.exposure_images, ctx.clean.exposure_labels, slots, settings, g)
    rows = []
    for tr in inv:
        hs = success_rate(model.model, tr, ctx.clean.holdout_images, ctx.clean.holdout_labels)
        rows.append([tr.slot.target, tr.slot.shape, tr.effective_size(), hs])
    rec = {"name": entry["name"], "attack": truth.get("attack") or "clean", "target": truth.get("target"),
           "C": C, "cands": cands, "refs": refs, "triggers": rows,
           "collapse": {k: v for k, v in (ctx.results.get("exposure-collapse") or {}).items()
                        if isinstance(v, (int, float, list, str))},
           "mmbd_target": (ctx.results.get("mmbd") or {}).get("target"),
           "seconds": round(time.perf_counter() - t0, 1)}
    with out.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    print(entry["name"], rec["target"], cands, refs, rec["seconds"], flush=True)
