"""Sampled DARE merges (the merging bench's settings: weight 0.5, density 0.5, rescale, seed 0) of every
bench group, with BatchNorm statistics dropped like parameters (merging.py before a7fac35, read from git)
and averaged (after): clean accuracy on 500 of the zoo's clean images, whether every logit is finite, the
share of the most-predicted class; the expected (task-arithmetic) merge's; the sampled merge's real ASR.

    .venv/bin/python docs/bench/merging/dare-bn/dare_bn.py ZOO   # a `zoo build merging` folder"""
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from modelscan_bd.gate_bench import GroundTruth, groups_for
from modelscan_bd.gate import with_state
from modelscan_bd.gate_config import parse_config
from modelscan_bd.merging import merge_state_dicts
from modelscan_bd.bench import read_manifest

before_src = subprocess.run(["git", "show", "a7fac35^:modelscan_bd/merging.py"], check=True, capture_output=True,
                            text=True).stdout
before_file = Path(tempfile.mkdtemp()) / "merging_before.py"
before_file.write_text(before_src)
spec = importlib.util.spec_from_file_location("merging_before", before_file)
old = importlib.util.module_from_spec(spec)
sys.modules["merging_before"] = old
spec.loader.exec_module(old)
torch.set_num_threads(2)
zoo = Path(sys.argv[1])
manifest = read_manifest(zoo)
entries = {m["name"]: m for m in manifest["models"]}
cands = [m for m in manifest["models"] if m.get("role") == "candidate"]
clean = [m["name"] for m in cands if not m["backdoored"]]
bd = [m["name"] for m in cands if m["backdoored"]]
truth = GroundTruth(zoo, entries)


@torch.no_grad()
def accuracy(state):
    logits = with_state(truth.base.adapter, state, "m").model(truth.x[:500])
    finite = bool(torch.isfinite(logits).all())
    pred = logits.argmax(1)
    share = float(torch.bincount(pred, minlength=logits.shape[1]).max()) / len(pred)
    return float((pred == truth.y[:500]).float().mean()), finite, share


print("group | before: acc, finite, top share | after: acc, finite, top share | task arithmetic acc | merged ASR after")
for gi, group in enumerate(groups_for(clean, bd, 3, 2)):
    cfg = parse_config({"models": [{"model": n, "parameters": {"weight": 0.5, "density": 0.5}} for n in group],
                        "base_model": "base", "merge_method": "dare_linear"})
    states = [truth.state(n) for n in group]
    b = accuracy(old.merge_state_dicts(truth.base_state, states, cfg.spec, seed=0))
    a = accuracy(merge_state_dicts(truth.base_state, states, cfg.spec, seed=0))
    t = accuracy(merge_state_dicts(truth.base_state, states, cfg.spec.expected(), seed=0))
    asr = truth.merged_asr(group, "dare_linear", seed=0)
    r = lambda x: (round(x[0], 3), x[1], round(x[2], 3))  # noqa: E731
    print(gi, ",".join(group), "|", r(b), "|", r(a), "|", r(t), "|", None if asr is None else round(asr, 3), flush=True)
