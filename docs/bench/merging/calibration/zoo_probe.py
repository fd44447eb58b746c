"""What the trigger-transfer probes (peer-transfer.py, own-trigger-transfer.py) share: a merging zoo's
candidates, their ground truth, the bench run's cached scans by candidate name, and the gate's clean data."""
import hashlib
import json
from pathlib import Path

import torch

from modelscan_bd.cleandata import load_clean_data
from modelscan_bd.gate import load_member


class ZooProbe:
    def __init__(self, zoo: Path, run: Path):
        torch.set_num_threads(1)
        self.zoo, self.run = zoo, run
        man = json.loads((zoo / "manifest.json").read_text())
        entries = {m["name"]: m for m in man["models"] if m["name"] != "base" and m.get("truth_dir")}
        self.truth = {n: json.loads((zoo / e["truth_dir"] / "groundtruth.json").read_text())
                      for n, e in entries.items()}
        self._by_sha = {hashlib.sha256((zoo / e["path"] / "model.safetensors").read_bytes()).hexdigest(): n
                        for n, e in entries.items()}
        self.cache = json.loads((run / "scan-cache.json").read_text())
        self.base = load_member(str(zoo / "models" / "base"), lambda m: None)
        self.clean = load_clean_data(str(zoo / "clean-data.npz"), self.base.adapter, budget=150, seed=0)
        self.models = {n: load_member(str(zoo / e["path"]), lambda m: None).adapter for n, e in entries.items()}

    def cached(self, kind: str, sha_at: int) -> dict[str, dict]:
        """Cached entries whose key starts with ``kind`` (e.g. ["differential", "own"] or ["own"]), by the name
        of the candidate whose weights hash sits at key position ``sha_at``."""
        out = {}
        for k, v in self.cache.items():
            key = json.loads(k)
            if key[:len(kind)] == kind and v and key[sha_at] in self._by_sha:
                out[self._by_sha[key[sha_at]]] = v
        return out

    def flagged(self) -> dict[str, tuple[bool, bool, str | None]]:
        """By candidate name: whether the gate found its trigger inverted against the base planted or specific in
        any merge group of the run, whether it is backdoored, and its attack (from RUN/records.jsonl)."""
        out: dict[str, tuple[bool, bool, str | None]] = {}
        for line in open(self.run / "records.jsonl"):
            for c in json.loads(line)["candidates"]:
                dt = c.get("differential_trigger") or {}
                was = out.get(c["name"], (False,))[0]
                out[c["name"]] = (was or bool(dt.get("planted") or dt.get("specific")), c["backdoored"], c.get("attack"))
        return out
