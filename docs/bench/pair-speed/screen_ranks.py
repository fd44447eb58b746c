"""For each zoo model: pair-trigger's screen as the detector runs it (its generator, its slots) but in full (no pair
dropped), with snapshots of every pair's size at steps 25..200; one JSON line per model, with the full screen's
score, for the early-drop analysis (`analyze_ranks.py`) and the held-out check (`check.py`).

    python docs/bench/pair-speed/screen_ranks.py OUT.jsonl ZOO [ZOO ...]
"""
import json, sys, time
from pathlib import Path
import torch
from modelscan_bd.bench import read_manifest, read_truth
from modelscan_bd.scan import ScanConfig, scan
from modelscan_bd.detectors import pair

CHECK = [25, 50, 75, 100, 125, 150, 200]
captured = {}
if hasattr(pair, "screen_pairs"):  # (the halving candidate, 4358632) keep every pair: the full screen
    pair.screen_pairs.__defaults__ = (pair.DROP_AT, 10 ** 6)
orig_inv = pair.Inversion
class SnapInversion(orig_inv):
    def run(self, steps):
        if len(self.slots) <= pair.TOP:  # the refine run: as is
            return super().run(steps)
        done, snaps = 0, {}
        for c in CHECK:
            super().run(c - done); done = c
            snaps[c] = [t.effective_size() for t in self.results()]
        captured["snaps"] = snaps
        captured["slots"] = [(s.source, s.target) for s in self.slots]
pair.Inversion = SnapInversion

def main(out, zoos):
    torch.set_num_threads(2)
    for zoo in map(Path, zoos):
        for entry in read_manifest(zoo)["models"]:
            truth = read_truth(zoo, entry)
            t = time.perf_counter()
            outcome = scan(str(zoo / entry["path"]), ScanConfig(budget="standard", seed=0, detectors=["pair-trigger"],
                                                                clean_data=str(zoo / "clean-data.npz")))
            r = outcome.context.results.get("pair-trigger") or {}
            row = {"zoo": zoo.name, "name": entry["name"], "attack": truth.get("attack") or "clean",
                   "hard": bool(entry.get("hard") or truth.get("hard")), "target": truth.get("target"),
                   "true_source": (truth.get("params") or {}).get("source"), "found_source": r.get("source"),
                   **{k: r.get(k) for k in ("label", "score", "crowd_gap", "size", "flagged")},
                   "seconds": round(time.perf_counter() - t, 2), "slots": captured["slots"],
                   "snaps": {str(k): [round(v, 6) for v in s] for k, s in captured["snaps"].items()}}
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print({k: row[k] for k in ("name", "score", "crowd_gap", "seconds")}, flush=True)

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
