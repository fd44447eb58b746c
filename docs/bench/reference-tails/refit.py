"""Write the candidate `standard` file: the three ten-class clean-reference tests (warp_fragility, feature_gap,
pair_score) refitted on every committed ordinary clean ten-class ResNet (`rows.py`), each cut where an
exponential tail fitted to those models puts a clean model's chance of exceeding it at alpha = 1 % / 3
(`verdict.fit_references(alpha=...)`; PLAN.md). feature-trigger's and pair-trigger's own thresholds follow
their cuts. Nothing else in the file changes.

    PYTHONPATH=. python docs/bench/reference-tails/refit.py modelscan_bd/calibration/classifier.json OUT.json"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from rows import group, load_rows  # noqa: E402

from modelscan_bd.verdict import REFERENCE_ALPHA as ALPHA  # noqa: E402  (1 % over the three tests)
from modelscan_bd.verdict import REFERENCES, fit_references  # noqa: E402


def main(shipped: str, out: str) -> None:
    rows = [r for r in load_rows() if group(r) == "clean"]
    refs = fit_references([r["features"] for r in rows], [0] * len(rows), REFERENCES, 3.0, ALPHA)
    cal = json.loads(Path(shipped).read_text())
    cal["references"] = refs
    cal["detectors"]["feature"]["gap_threshold"] = round(refs["feature_gap"]["cut"], 4)
    cal["detectors"]["pair"]["score_threshold"] = round(refs["pair_score"]["cut"], 4)
    cal["version"] += "+tails-2026-12-07"
    zoos = {f: len({r["zoo"] for r in rows if r["features"].get(f) is not None}) for f in refs}
    cal["description"] += ("; since 2026-12-07 the warp_fragility, feature_gap and pair_score references are refitted "
                           "on every committed ordinary clean 10-class ResNet at standard (" +
                           ", ".join(f"{f} {refs[f]['n']} models of {zoos[f]} zoos" for f in refs) +
                           f"), each cut at a {ALPHA:.4f} chance for a clean model under an exponential tail "
                           "(docs/bench/reference-tails)")
    Path(out).write_text(json.dumps(cal, indent=2) + "\n")
    for f, ref in refs.items():
        print(f"{f}: n {ref['n']} of {zoos[f]} zoos, mean {ref['mean']:.4f}, sd {ref['sd']:.4f}, tail u {ref['tail']['u']:.4f} "
              f"beta {ref['tail']['beta']:.4f} p_u {ref['tail']['p_u']:.3f} -> cut {ref['cut']:.4f} (z {ref['z_cut']:.2f})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
