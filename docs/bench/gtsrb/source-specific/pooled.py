"""GTSRB pooled over every zoo, scored by the shipped `standard` calibration and its 43-class cuts: as
reported before (91 models, s400's two source-specific models built before the source cap), and with
those two replaced by the source-specific models built after it (this folder's zoos).

    python docs/bench/gtsrb/source-specific/pooled.py   # > pooled.txt
"""
import json
from pathlib import Path

from modelscan_bd.bench import auroc
from modelscan_bd.verdict import load_calibration, probability

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parent / "share-candidates"  # the shipped scanner's records of the seven zoos
OLD = {z: SHIPPED / f"results-v2-{z}.json" for z in ("s400", "s420", "s440", "s460", "s480", "s500", "s520")}
NEW = {z: HERE / f"results-{z}.json" for z in ("ss600b", "ss620")}
# Built after the cap but before the clean-hit-rate rule, which would reject them (ss_check-ss600b.txt:
# 0.23 and 0.51 of the clean source images already go to the target).
REJECTED_NOW = {("ss600b", "resnet-source_specific-002"), ("ss600b", "resnet-source_specific-005")}
# The calibration these figures were made with: CIFAR-10 weights and the 43-class cuts. The shipped file
# has since a combiner of its own for 43 classes (../manyclass/), so it is pinned here.
CAL = load_calibration(HERE.parent / "calibration-shipped-cuts43.json")
CUT = CAL.cuts_for(43)[0]


def records(files):
    out = []
    for zoo, path in files.items():
        if not path.exists():
            continue
        for r in json.loads(path.read_text())["records"]:
            out.append({**r, "zoo": zoo, "p": probability(r["features"], CAL)[0]})
    return out


def line(label, recs, cut=CUT):
    y = [bool(r["backdoored"]) for r in recs]
    tp = sum(r["p"] >= cut for r in recs if r["backdoored"])
    fp = sum(r["p"] >= cut for r in recs if not r["backdoored"])
    print(f"{label}: {len(recs)} models ({sum(y)} backdoored), AUROC {auroc([r['p'] for r in recs], y):.3f}, "
          f"BACKDOORED (p >= {cut:.3f}) TPR {tp}/{sum(y)} FPR {fp}/{len(y) - sum(y)}")


def kept_now(new):
    """The source-specific models after the cap that the zoo's rules keep now."""
    return [r for r in new if r["attack"] == "source_specific" and (r["zoo"], r["name"]) not in REJECTED_NOW]


def every_zoo():
    """All GTSRB models the rules keep now: the seven zoos' all-to-one models, this folder's kept
    source-specific ones, and every clean model (the 101 of the last line)."""
    old, new = records(OLD), records(NEW)
    return ([r for r in old if r["backdoored"] and r["attack"] != "source_specific"] + kept_now(new)
            + [r for r in old + new if not r["backdoored"]])


def main():
    old, new = records(OLD), records(NEW)
    clean = [r for r in old + new if not r["backdoored"]]
    a2o = [r for r in old if r["backdoored"] and r["attack"] != "source_specific"]
    ss_old = [r for r in old if r["attack"] == "source_specific"]
    ss_new = [r for r in new if r["attack"] == "source_specific"]
    line("as reported (seven zoos)", old)
    line("seven zoos without source-specific", [r for r in old if r["attack"] != "source_specific"])
    line("source-specific before the cap (s400) vs all clean", ss_old + clean)
    line("source-specific after the cap vs all clean", ss_new + clean)
    line("all zoos, source-specific after the cap only", a2o + ss_new + clean)
    line("source-specific the zoo's rules keep now vs all clean", kept_now(new) + clean)
    line("all zoos, source-specific the zoo's rules keep now", every_zoo())
    for r in ss_old + ss_new:
        print(f"  {r['zoo']:7} {r['name']:28} target {r['target']:>2}  p {r['p']:.3f}  candidate {r['candidate']}")


if __name__ == "__main__":
    main()
