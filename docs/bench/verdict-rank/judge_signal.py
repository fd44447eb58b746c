"""PLAN-signal2.md's test: a bench scan's records judged by the shipped ranking and by `ranked+signal`
(`rank_signal.with_signal`, the signal tail fitted on the development rows' ordinary clean models), from the same
features, with the plan's four conditions checked.

    PYTHONPATH=. python docs/bench/verdict-rank/judge_signal.py runs/scan-s2910/results.json
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rank_lozo import ARCH, FITTING_ZOOS, dev_rows, group  # noqa: E402
from rank_signal import SIGNAL, with_signal  # noqa: E402

from modelscan_bd.bench import auroc, tpr_at_fpr  # noqa: E402
from modelscan_bd.verdict import REFERENCE_ALPHA, load_calibration, probability, status_for, tail_cut  # noqa: E402


def family_auroc(records, p, family, negatives) -> float | None:
    pos = [v for r, v in zip(records, p) if r["attack"] == family]
    neg = [v for r, v in zip(records, p) if negatives(r)]
    return auroc(pos + neg, [1] * len(pos) + [0] * len(neg)) if pos and neg else None


def main(path: str) -> None:
    records = json.loads(Path(path).read_text())["records"]
    shipped = load_calibration(budget="standard")
    clean = [r["features"][SIGNAL] for r in dev_rows()
             if group(r) == "clean" and r["zoo"] not in FITTING_ZOOS and r["features"].get(SIGNAL) is not None]
    tail = tail_cut(clean, REFERENCE_ALPHA)
    y = [int(r["backdoored"]) for r in records]
    n_ss = sum(r["attack"] == "source_specific" for r in records)
    n_ordinary = sum(r["attack"] == "clean" and not r.get("hard") for r in records)
    print(f"{len(records)} models: {sum(y)} backdoored ({n_ss} source-specific, "
          f"{sum(r['attack'] == 'sig' for r in records)} SIG), {len(y) - sum(y)} clean "
          f"({len(y) - sum(y) - n_ordinary} hard); signal tail from {len(clean)} development clean models: "
          + ", ".join(f"{k} {v:.4g}" for k, v in tail.items() if isinstance(v, (int, float))))
    nc = [r["neural_cleanse"]["score"] for r in records]
    print(f"  Neural Cleanse (same run): AUROC {auroc(nc, y):.3f}")
    rules = {"shipped": [probability(r["features"], shipped, 10, ARCH)[0] for r in records],
             "ranked+signal": [p for _, p in with_signal(records, shipped, tail)]}
    stats, statuses = {}, {}
    for name, p in rules.items():
        statuses[name] = [status_for(v, shipped, False, 10, ARCH) for v in p]
        stats[name] = (auroc(p, y), family_auroc(records, p, "sig", lambda r: not r["backdoored"]),
                       family_auroc(records, p, "source_specific", lambda r: r["attack"] == "clean" and not r.get("hard")))
        a, sig, ss = stats[name]
        print(f"  {name}: AUROC {a:.3f}, TPR@5%FPR {tpr_at_fpr(p, y):.3f}; SIG against every clean "
              f"{'-' if sig is None else f'{sig:.3f}'}; source-specific against ordinary clean "
              f"{'-' if ss is None else f'{ss:.3f}'}; flagged {sum(s != 'CLEAN' for s, b in zip(statuses[name], y) if b)}"
              f"/{sum(y)}, clean {sum(s != 'CLEAN' for s, b in zip(statuses[name], y) if not b)}/{len(y) - sum(y)}")
        for r, v in sorted(zip(records, p), key=lambda x: -x[1]):
            print(f"    {v:.4f} {r['name']}{' (hard)' if r.get('hard') else ''}  signal_success "
                  f"{r['features'].get(SIGNAL)}  pair_score {r['features'].get('pair_score')}")
    moved = sum(a != b for a, b in zip(statuses["shipped"], statuses["ranked+signal"]))
    (a0, sig0, ss0), (a1, sig1, ss1) = stats["shipped"], stats["ranked+signal"]
    eps = 1e-9
    checks = {"1. AUROC not lower": a1 >= a0 - eps,
              "2. SIG AUROC not lower": sig0 is None or sig1 >= sig0 - eps,
              "3. source-specific falls by at most one pair": ss0 is None or ss1 >= ss0 - 1 / (n_ss * n_ordinary) - eps,
              "4. no status moves": moved == 0}
    print(f"  statuses that differ: {moved} of {len(records)}")
    for k, ok in checks.items():
        print(f"  {k}: {'yes' if ok else 'NO'}")
    print(f"  PLAN-signal2: {'ships' if all(checks.values()) else 'does not ship'}")


if __name__ == "__main__":
    main(sys.argv[1])
