"""The alternatives to the other-recipes threshold that were tried first, offline from committed
records (``python variants.py > variants.txt``). Each refits the combiner's weights:

A. (chosen before any result was seen) fit on the CIFAR-10 fitting split plus the 9 40-epoch
   clean models of pilot zoos 300 and 303;
B. fit on the CIFAR-10 fitting split plus every long-trained zoo but s305 (WaNet and Blended
   kept out, as in the benchmark's split): only s305 and the CIFAR-10 held-out split are unseen;
C. cap MMBD's -log10 p (2.0), refit on the CIFAR-10 fitting split.
"""
import copy

from evaluate import evaluation_sets, records, summary

from modelscan_bd.bench import calibrate, split

HELD_SEEDS = [14, 15, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29]
fit, _ = split(records("../cifar10/results-2026-12-01.json"), ["blended"], HELD_SEEDS)
pilot = {s: records(f"../cifar10-wanet-pilot/results-seed{s}.json") for s in (300, 301, 302)}
pilot[303] = records("../cifar10-wanet-pilot/results-clean40-seed303.json")
warp = [r for s in (300, 301, 302) for r in records(f"../cifar10-warp/bench-seed{s}.json")]
s304 = records("results-c40-s304.json")
sets = evaluation_sets()
del sets["WaNet of the warp bench (40 epochs)"], sets["zoo s306 (20 epochs, built after)"]  # these refits carry no warp test (their rows lack it)


def capped(rs, cap=2.0):
    out = copy.deepcopy(rs)
    for r in out:
        if r["features"].get("mmbd_neglog10_p") is not None:
            r["features"]["mmbd_neglog10_p"] = min(cap, r["features"]["mmbd_neglog10_p"])
    return out


def clean(rs):
    return [r for r in rs if not r["backdoored"]]


variants = {
    "A": (calibrate(fit + clean(pilot[300]) + pilot[303], "A", "A", "standard"), list(sets)),
    "B": (calibrate(fit + [r for r in sum(pilot.values(), []) + warp + s304 if r["attack"] not in ("wanet", "blended")],
                    "B", "B", "standard"),
          ["CIFAR-10 held-out (20 epochs)", "zoo s305 (60 epochs)"]),
    "C": (calibrate(capped(fit), "C", "C", "standard"), list(sets)),
}
for name, (cal, unseen) in variants.items():
    print(f"== {name}: BACKDOORED >= {cal.backdoored_threshold:.3f}")
    for s in unseen:
        rs = capped(sets[s]) if name == "C" else sets[s]
        m = summary(rs, cal)
        f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"  {s:40} AUROC {f(m['auroc'])} TPR {f(m['tpr'])} FPR {f(m['fpr'])} TPR@5%FPR {f(m['tpr_at_5fpr'])}"
              f" | clean BACKDOORED {m['clean_backdoored']} of {m['clean']}")
