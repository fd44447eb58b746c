"""The shipped classifier calibration before and after the other-recipes threshold, on every
model the new threshold never saw. Offline, from committed bench records (the verdict is a
function of a record's features and the calibration):

    python evaluate.py calibration-before.json ../../../modelscan_bd/calibration/classifier.json

Sets: the CIFAR-10 benchmark's held-out split (20 epochs); the 40-epoch clean models of WaNet
pilot zoos 301 and 302; the 16 WaNet models of the warp bench (their records have the warp
feature; the pilots' predate it); two zoos built for this check, s304 (40 epochs) and s305
(60 epochs); and s306 (the benchmark's 20 epochs), built after the new threshold was fixed. The threshold's clean models came from
pilot zoos 300 and 303 and the warp bench's rebuilt zoos 300-302, none of them here.
"""
import json
import sys

from modelscan_bd.bench import metrics, split
from modelscan_bd.verdict import Calibration, probability

HELD_SEEDS = [14, 15, 16, 17, 18, 19, 24, 25, 26, 27, 28, 29]


def records(path: str) -> list[dict]:
    return json.load(open(path))["records"]


def evaluation_sets() -> dict[str, list[dict]]:
    _, held = split(records("../cifar10/results-2026-12-01.json"), ["blended"], HELD_SEEDS)
    pilot = [r for s in (301, 302) for r in records(f"../cifar10-wanet-pilot/results-seed{s}.json")
             if not r["backdoored"]]
    wanet = [r for s in (300, 301, 302) for r in records(f"../cifar10-warp/bench-seed{s}.json") if r["backdoored"]]
    return {"CIFAR-10 held-out (20 epochs)": held, "clean of WaNet pilots 301+302 (40 epochs)": pilot,
            "WaNet of the warp bench (40 epochs)": wanet,
            "zoo s304 (40 epochs)": records("results-c40-s304.json"),
            "zoo s305 (60 epochs)": records("results-c60-s305.json"),
            "zoo s306 (20 epochs, built after)": records("results-c20-s306.json")}


def summary(rs: list[dict], cal: Calibration) -> dict:
    ps = [probability(r["features"], cal)[0] for r in rs]
    clean = [p for p, r in zip(ps, rs) if not r["backdoored"]]
    m = metrics(rs, cal)
    return {"models": len(rs), "backdoored": m["backdoored"], "auroc": m["auroc"], "tpr": m["tpr"], "fpr": m["fpr"],
            "tpr_at_5fpr": m["tpr_at_5fpr"], "target_accuracy": m["target_accuracy"],
            "clean_backdoored": sum(p >= cal.backdoored_threshold for p in clean),
            "clean_suspicious": sum(cal.suspicious_threshold <= p < cal.backdoored_threshold for p in clean),
            "clean": len(clean)}


def main(*paths: str) -> None:
    sets = evaluation_sets()
    sets["all of the above"] = [r for rs in sets.values() for r in rs]
    sets["all long-trained"] = [r for k, rs in sets.items() if "0 epochs)" in k and "20" not in k for r in rs]
    out = {}
    for path in paths:
        cal = Calibration(**json.load(open(path)))
        print(f"== {cal.version}: BACKDOORED >= {cal.backdoored_threshold:.3f}, "
              f"SUSPICIOUS >= {cal.suspicious_threshold:.3f}")
        out[cal.version] = {}
        for name, rs in sets.items():
            s = out[cal.version][name] = summary(rs, cal)
            f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            print(f"  {name:40} {s['models']:3} models: AUROC {f(s['auroc'])} TPR {f(s['tpr'])} FPR {f(s['fpr'])} "
                  f"TPR@5%FPR {f(s['tpr_at_5fpr'])} target {f(s['target_accuracy'])} | clean: "
                  f"{s['clean_backdoored']} BACKDOORED, {s['clean_suspicious']} SUSPICIOUS of {s['clean']}")
    json.dump(out, open("evaluate.json", "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
