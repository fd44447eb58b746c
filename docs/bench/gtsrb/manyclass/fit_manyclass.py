"""A combiner of its own for models of 43 classes: fitted on the CIFAR-10 file's own fitting split pooled
with every GTSRB zoo, its cuts from the GTSRB clean models (``verdict.fit_class_combiner``), and how that
procedure does on models it never saw: each GTSRB zoo held out in turn, and each zoo with one attack family.
One budget at a time: its GTSRB and CIFAR-10 records were scanned at that budget.

    python docs/bench/gtsrb/manyclass/fit_manyclass.py > docs/bench/gtsrb/manyclass/evaluate.txt
    python docs/bench/gtsrb/manyclass/fit_manyclass.py --budget fast > docs/bench/gtsrb/manyclass/evaluate-fast.txt
    python docs/bench/gtsrb/manyclass/fit_manyclass.py --write modelscan_bd/calibration/classifier.json
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

from modelscan_bd.bench import auroc, split
from modelscan_bd.verdict import Calibration, fit_class_combiner, probability

HERE = Path(__file__).resolve().parent
GTSRB = HERE.parent
CIFAR = GTSRB.parent / "cifar10"
sys.path.insert(0, str(GTSRB / "source-specific"))
import pooled  # noqa: E402  (the GTSRB records the rules keep, scored by the calibration before this)

CLASSES = 43


class Budget:
    """The records scanned at one budget and the calibration that budget shipped before."""

    def __init__(self, name):
        self.name = name
        if name == "standard":
            self.before = pooled.CAL  # CIFAR-10 weights with 43-class cuts
            # the CIFAR-10 file's own split (its provenance command): Blended and these seeds never fitted on
            self.cifar, self.held_seeds = CIFAR / "results.json", [14, 15, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29]
        else:
            self.before = Calibration(**json.loads((GTSRB / "fast-cuts" / "calibration-fast-cuts43.json").read_text()))
            self.cifar, self.held_seeds = CIFAR / "results-fast.json", [14, 15, 16, 17, 18, 19]
        self.cut = self.before.cuts_for(CLASSES)[0]

    def gtsrb_records(self):
        if self.name == "standard":
            s640 = json.loads((GTSRB / "results-blind-s640.json").read_text())["records"]
            recs = pooled.every_zoo() + [{**r, "zoo": "s640"} for r in s640]
        else:  # the seven zoos scanned at fast; s400's two source-specific models were relabellings
            recs = [{**r, "zoo": z} for z in ("s400", "s420", "s440", "s460", "s480", "s500", "s520")
                    for r in json.loads((GTSRB / "fast-cuts" / f"results-fast-{z}.json").read_text())["records"]
                    if r["attack"] != "source_specific"]
        return [{**r, "p": probability(r["features"], self.before)[0]} for r in recs]

    def cifar_fitting_split(self):
        return split(json.loads(self.cifar.read_text())["records"], ["blended"], self.held_seeds)[0]


def fit(budget, gtsrb, extra, version="candidate", description=""):
    """The shipped procedure: one logistic fit on GTSRB models (never the hard ones) plus ``extra``, the
    cuts from those GTSRB clean models."""
    fitted = [r for r in gtsrb if not r["hard"]]
    rows = [r["features"] for r in fitted + extra]
    labels = [int(r["backdoored"]) for r in fitted + extra]
    clean = [r["features"] for r in fitted if not r["backdoored"]]
    return fit_class_combiner(budget.before, rows, labels, clean, CLASSES, version=version, description=description)


def score(recs, cal):
    cut = cal.cuts_for(CLASSES)[0]
    return [{**r, "q": probability(r["features"], cal, CLASSES)[0], "cut": cut} for r in recs]


def tally(recs, key="q", before_cut=None):
    """AUROC, and flagged backdoored / backdoored and flagged clean / clean, at each record's own cut
    (``score``) or at ``before_cut``."""
    y = [int(r["backdoored"]) for r in recs]
    flagged = [r[key] >= (r["cut"] if key == "q" else before_cut) for r in recs]
    tp = sum(f for f, t in zip(flagged, y) if t)
    fp = sum(f for f, t in zip(flagged, y) if not t)
    return auroc([r[key] for r in recs], y), tp, sum(y), fp, len(y) - sum(y)


def line(label, recs, key="q", before_cut=None):
    a, tp, nb, fp, nc = tally(recs, key, before_cut)
    print(f"{label}: {len(recs)} models, AUROC {a:.3f}, BACKDOORED TPR {tp}/{nb} FPR {fp}/{nc}")


def held_out(budget, recs, extra, family=None):
    """Each zoo scored by the procedure fitted on the other zoos (without ``family`` anywhere)."""
    out = []
    for zoo in sorted({r["zoo"] for r in recs}):
        train = [r for r in recs if r["zoo"] != zoo and r["attack"] != family]
        test = [r for r in recs if r["zoo"] == zoo and (family is None or r["attack"] in ("clean", family))]
        out += score(test, fit(budget, train, [r for r in extra if r["attack"] != family]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", choices=("standard", "fast"), default="standard")
    ap.add_argument("--write", help="write the calibration with the fitted 43-class combiner here")
    args = ap.parse_args()
    budget = Budget(args.budget)
    gtsrb, cifar = budget.gtsrb_records(), budget.cifar_fitting_split()
    print(f"Budget {budget.name}. GTSRB: {len(gtsrb)} models of {len({r['zoo'] for r in gtsrb})} zoos "
          f"({sum(r['backdoored'] for r in gtsrb)} backdoored, {sum(r['hard'] for r in gtsrb)} hard clean); "
          f"CIFAR-10 fitting split: {len(cifar)} models")
    print(f"\nBefore: {budget.before.version} (CIFAR-10 weights, 43-class cut {budget.cut:.3f}), every model")
    line("  all", gtsrb, "p", budget.cut)
    line("  without source-specific", [r for r in gtsrb if r["attack"] != "source_specific"], "p", budget.cut)
    for extra, name in ((cifar, "pooled with the CIFAR-10 fitting split (the candidate)"), ([], "GTSRB alone")):
        print(f"\nFit {name}, each zoo held out in turn")
        lozo = held_out(budget, gtsrb, extra)
        line("  all", lozo)
        line("  without source-specific", [r for r in lozo if r["attack"] != "source_specific"])
        for family in sorted({r["attack"] for r in gtsrb} - {"clean"}):
            line(f"  {family} never fitted on (nor in CIFAR-10's split)", held_out(budget, gtsrb, extra, family))
        if extra:
            for r in lozo:
                if not r["backdoored"] and (r["q"] >= r["cut"] or r["p"] >= budget.cut):
                    print(f"    clean flagged: {r['zoo']:7} {r['name']:28} candidate {r['candidate']:>2} "
                          f"before p {r['p']:.3f}, held out {r['q']:.3f} (cut {r['cut']:.3f})")
            c12 = [r for r in lozo if not r["backdoored"] and r["candidate"] == 12]
            print(f"    clean models naming class 12: {len(c12)}; flagged before "
                  f"{sum(r['p'] >= budget.cut for r in c12)}, held out {sum(r['q'] >= r['cut'] for r in c12)}")
    feats = json.dumps([[r["zoo"], r["name"], r["features"]] for r in gtsrb], sort_keys=True)
    tag = hashlib.sha256(feats.encode()).hexdigest()[:8]
    version = budget.before.version.split("+cuts43")[0] + f"+combiner43-2026-12-04-{tag}"
    cal = fit(budget, gtsrb, cifar, version, f"combiner and cuts for 43+ classes fitted on {len(cifar)} models of "
              f"the CIFAR-10 fitting split and {sum(not r['hard'] for r in gtsrb)} GTSRB models of "
              f"{len({r['zoo'] for r in gtsrb})} zoos (budget {budget.name}), cuts from their "
              f"{sum(not r['hard'] and not r['backdoored'] for r in gtsrb)} clean ones (docs/bench/gtsrb/manyclass)")
    backdoored, suspicious, entry = cal.cuts_for(CLASSES)
    print(f"\nThe candidate, fitted on all: {version}: BACKDOORED {backdoored:.3f}, SUSPICIOUS {suspicious:.3f}; "
          "weights " + ", ".join(f"{f} {w:+.2f}" for f, w in zip(cal.features, entry["combiner"]["weights"])))
    if args.write:
        Path(args.write).write_text(cal.to_json())


if __name__ == "__main__":
    main()
