"""Write the calibration for pair-trigger version 2 (PLAN-largest.md): the ``pair_score`` clean reference
refitted on the largest refined-pair score of the ordinary clean models in ``refined.jsonl`` (the
development rows), cut at the shipped alpha (``verdict.REFERENCE_ALPHA``) under an exponential tail, and
pair-trigger's own threshold following its cut. Nothing else in the file changes.

    PYTHONPATH=. python docs/bench/pair-noise/refit_largest.py modelscan_bd/calibration/classifier.json OUT.json
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from analyze import group, load  # noqa: E402
from refined import pair_scores  # noqa: E402

from modelscan_bd.verdict import REFERENCE_ALPHA, fit_references  # noqa: E402


def main(shipped: str, out: str) -> None:
    rows = [r for r in load(str(HERE / "refined.jsonl")) if group(r) == "clean"]
    ref = fit_references([{"pair_score": max(pair_scores(r))} for r in rows], [0] * len(rows), {"pair_score": 1},
                         3.0, REFERENCE_ALPHA)["pair_score"]
    cal = json.loads(Path(shipped).read_text())
    cal["references"]["pair_score"] = ref
    cal["detectors"]["pair"]["score_threshold"] = round(ref["cut"], 4)
    cal["version"] += "+pair2-2026-12-07"
    zoos = sorted({r["zoo"] for r in rows})
    cal["description"] += (f"; since pair-trigger version 2 (2026-12-07) the pair_score reference is the largest "
                           f"refined-pair score of {ref['n']} ordinary clean 10-class ResNets of {len(zoos)} zoos "
                           f"({', '.join(zoos)}; docs/bench/pair-noise/refined.jsonl), cut at a {REFERENCE_ALPHA:.4f} "
                           "chance under an exponential tail")
    Path(out).write_text(json.dumps(cal, indent=2) + "\n")
    print(f"pair_score: n {ref['n']} of {len(zoos)} zoos, mean {ref['mean']:.4f}, sd {ref['sd']:.4f}, "
          f"tail u {ref['tail']['u']:.4f} beta {ref['tail']['beta']:.4f} p_u {ref['tail']['p_u']:.3f} "
          f"-> cut {ref['cut']:.4f} (z {ref['z_cut']:.2f})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
