"""Measure the shipped label-map detector (``modelscan_bd.detectors.label_map``) on every model of
some zoos, through the real scan path with only that detector selected, and optionally fit its
clean reference into a calibration file.

    python measure.py OUT.jsonl ZOO...                       # one JSON line per model
    python measure.py OUT.jsonl ZOO... --fit CALIBRATION     # and fit on the zoos' clean models
    python measure.py OUT.jsonl ZOO... --budget thorough     # at another budget (no fit)

The fit (``verdict.with_class_references``) uses the clean, non-hard models of the given zoos and
adds the reference to the shipped calibration's 20+-class entry, its cut fixed at the spread of 6
that was written down before the held-out zoos (``../gtsrb-gpu/a2a_mapping/rule-preregistered.md``):
their 3-deviation cut would sit at 4.5, below clean models trained 100-150 epochs (up to 5.6). The
detector's own cut, the same 6, goes to the calibration's ``label_map`` block. Scan settings are
the benchmark's: budget standard, seed 0, the zoo's clean-data.npz.
"""
import hashlib
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch

from modelscan_bd.bench import read_truth
from modelscan_bd.detectors.label_map import DEFAULT_MIN_CLASSES, DEFAULT_SPREAD
from modelscan_bd.reports.atomic import atomic_write_text
from modelscan_bd.scan import ScanConfig, scan
from modelscan_bd.verdict import CLASS_REFERENCES, load_calibration, with_class_references


def measure(zoo: Path, budget: str = "standard"):
    manifest = json.loads((zoo / "manifest.json").read_text())
    for entry in manifest["models"]:
        truth = read_truth(zoo, entry)
        start = time.perf_counter()
        outcome = scan(str(zoo / entry["path"]), ScanConfig(budget=budget, seed=0, detectors=["label-map"],
                                                            clean_data=str(zoo / "clean-data.npz")))
        result = outcome.context.results.get("label-map") or {}
        yield {"zoo": zoo.name, "name": entry["name"], "classes": manifest.get("num_classes"),
               "attack": truth.get("attack") or "clean", "backdoored": bool(truth.get("backdoored")),
               "hard": bool(entry.get("hard")), "asr": truth.get("asr"),
               **{k: round(result[k], 4) if isinstance(result.get(k), float) else result.get(k)
                  for k in ("spread", "n_dest", "purity", "flip_rate", "size", "flagged")},
               "seconds": round(time.perf_counter() - start, 1)}


def main(argv):
    fit_to, budget = None, "standard"
    if "--budget" in argv:
        i = argv.index("--budget")
        budget, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    if "--fit" in argv:
        i = argv.index("--fit")
        fit_to, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    if fit_to and budget != "standard":
        raise SystemExit("--fit: the reference is fitted at budget standard, the calibration's own")
    out, zoos = Path(argv[0]), [Path(z) for z in argv[1:]]
    torch.set_num_threads(2)
    rows = []
    with out.open("w") as f:
        for zoo in zoos:
            for row in measure(zoo, budget):
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
    if fit_to:
        clean = [{"label_map_spread": r["spread"]} for r in rows if not r["backdoored"] and not r["hard"]]
        base = load_calibration(budget="standard")
        tag = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:8]
        cal = with_class_references(
            base, clean, DEFAULT_MIN_CLASSES, CLASS_REFERENCES,
            fixed_cuts={"label_map_spread": DEFAULT_SPREAD},
            version=f"{base.version}+labelmap-{date.today().isoformat()}-{tag}",
            description=f"label_map_spread reference from {len(clean)} clean models of zoos "
                        f"{', '.join(z.name for z in zoos)} (docs/bench/label-map)")
        cal.detectors["label_map"] = {"spread_threshold": DEFAULT_SPREAD, "min_classes": DEFAULT_MIN_CLASSES}
        atomic_write_text(fit_to, cal.to_json())


if __name__ == "__main__":
    main(sys.argv[1:])
