"""Write the calibration with the combiner's clean tail (PLAN.md's `ranked`): the shipped file unchanged but for
``combiner_tail``, the exponential tail of the combiner's logit over every fully scanned ordinary clean ten-class
ResNet of the development rows (``rank_lozo.py``'s, the combiner's fitting zoos v4 and v5 apart), at the
references' alpha (``verdict.REFERENCE_ALPHA``).

    git show 4a3d181:modelscan_bd/calibration/classifier.json > before.json   # the file before the tail
    PYTHONPATH=. python docs/bench/verdict-rank/add_tail.py before.json modelscan_bd/calibration/classifier.json
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rank_lozo import FITTING_ZOOS, dev_rows, group  # noqa: E402

from modelscan_bd.verdict import REFERENCE_ALPHA, Calibration, fit_combiner_tail  # noqa: E402


def main(shipped: str, out: str) -> None:
    data = json.loads(Path(shipped).read_text())
    clean = [r for r in dev_rows() if group(r) == "clean" and r["zoo"] not in FITTING_ZOOS]
    tail = fit_combiner_tail([r["features"] for r in clean], Calibration(**data), REFERENCE_ALPHA)
    zoos = sorted({r["zoo"] for r in clean})
    data["combiner_tail"] = tail
    data["version"] += "+rank-2026-12-07"
    data["description"] += (f"; since 2026-12-07 a model short of every cut ranks by its smallest clean-tail chance, "
                            f"the combiner's logit among them (its tail from {tail['n']} ordinary clean 10-class "
                            f"ResNets of {len(zoos)} zoos; docs/bench/verdict-rank)")
    Path(out).write_text(json.dumps(data, indent=2) + "\n")
    print(f"combiner tail: n {tail['n']} of {len(zoos)} zoos, u {tail['u']:.4f} beta {tail['beta']:.4f} "
          f"p_u {tail['p_u']:.3f}; at the threshold (logit 0) a clean chance of "
          f"{tail['p_u'] * 2.718281828 ** (tail['u'] / tail['beta']):.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
