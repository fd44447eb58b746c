"""Write the candidate `standard` file: a clean-reference test for signal-trigger v2's strong signal, read as
`signal_strong_log_failure` (v2b, PLAN-v2b.md; v2 read the success itself, whose cut landed above 1),
fitted by the shipped rule (`verdict.fit_references`: mean + 3 widened deviations) on the clean and hard clean
models of the development zoos as v2's signal step measured them (`dev.jsonl`). Nothing else in the file changes.

    git apply docs/bench/signal-strong/v2b.patch   # `verdict._log_failure` exists only there (not shipped)
    python docs/bench/signal-strong/refit.py docs/bench/signal-strong/classifier-shipped.json OUT.json
"""
import json
import sys
from pathlib import Path

from modelscan_bd.verdict import _log_failure, fit_references

HERE = Path(__file__).parent


def main(shipped: str, out: str) -> None:
    rows = [json.loads(line) for line in (HERE / "dev.jsonl").read_text().splitlines()]
    clean = [r for r in rows if r["attack"] is None]
    name = "signal_strong_log_failure"
    ref = fit_references([{name: _log_failure(r["strong"])} for r in clean], [0] * len(clean), {name: 1}, 3.0)[name]
    cal = json.loads(Path(shipped).read_text())
    cal["references"][name] = ref
    cal["version"] += "+signal-strong-2026-12-07"
    zoos = sorted({r["model"].split("/")[0] for r in clean})
    cal["description"] += (f"; {name} reference from {len(clean)} clean and hard clean 10-class models "
                           f"(zoos {', '.join(zoos)}; docs/bench/signal-strong)")
    Path(out).write_text(json.dumps(cal, indent=2) + "\n")
    for r in sorted(rows, key=lambda r: r["strong"]):
        print(f"{r['model']:48s} {r['attack'] or r['hard'] or 'clean':10s} {r['strong']:.4f} {_log_failure(r['strong']):.3f}")
    print(f"n {ref['n']}, mean {ref['mean']:.4f}, sd {ref['sd']:.4f}, cut {ref['mean'] + 3 * ref['sd']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
