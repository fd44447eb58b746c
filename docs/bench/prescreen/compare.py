"""Paired before/after comparison of two `standard` bench runs of the same zoo, judged by the
rules of PROTOCOL.md under the shipped calibration.

    .venv/bin/python docs/bench/prescreen/compare.py [--cut 0.70] BEFORE/results.json AFTER/results.json \
        [BEFORE2 AFTER2 ...]

Several pairs (zoos) are pooled. ``--cut`` also counts, for the before-runs, the clean models
flagged and backdoored models missed at that BACKDOORED cut (reported only, decides nothing)."""
import json
import sys

from modelscan_bd.bench import TARGETED_TYPES, auroc as bench_auroc, model_probability, reported_target
from modelscan_bd.verdict import load_calibration, status_for

RANK = {"CLEAN": 0, "INCOMPLETE": 0, "SUSPICIOUS": 1, "BACKDOORED": 2}


def auroc(pos: list[float], neg: list[float]) -> float:
    """The bench's AUROC of ``pos`` against ``neg``; nan where either is empty."""
    value = bench_auroc(pos + neg, [1] * len(pos) + [0] * len(neg))
    return float("nan") if value is None else value


def judged(path: str, cal) -> dict:
    out = {}
    zoo = json.load(open(path))
    for r in zoo["records"]:
        p = model_probability(r, cal)
        status = status_for(p, cal, False, r.get("num_classes"))
        targeted = r["backdoored"] and r["type"] in TARGETED_TYPES
        out[f"{zoo['provenance']['zoo_manifest_sha256'][:8]}/{r['name']}"] = {"record": r, "p": p, "status": status,
                          "target": reported_target(r, cal) if targeted else None}
    return out


def main(paths: list[str], cut: float | None = None) -> None:
    cal = load_calibration(None, budget="standard")
    before, after = {}, {}
    for b, a in zip(paths[::2], paths[1::2]):
        before.update(judged(b, cal))
        after.update(judged(a, cal))
    assert before.keys() == after.keys(), "the two runs scanned different models"
    print("| model | attack | target | p before | p after | status before -> after | target before -> after |")
    print("|---|---|---|---|---|---|---|")
    for name in before:
        b, a, r = before[name], after[name], before[name]["record"]
        kind = "hard clean" if r["hard"] else r["attack"]
        print(f"| {name} | {kind} | {r['target']} | {b['p']:.3f} | {a['p']:.3f} | {b['status']} -> {a['status']} | "
              f"{b['target']} -> {a['target']} |")
    print()
    clean = [n for n in before if not before[n]["record"]["backdoored"]]
    bd = [n for n in before if before[n]["record"]["backdoored"]]
    lc = [n for n in bd if before[n]["record"]["attack"] == "label_consistent"]
    for label, run in (("before", before), ("after", after)):
        flagged = [n for n in clean if run[n]["status"] == "BACKDOORED"]
        warned = [n for n in clean if RANK[run[n]["status"]] >= 1]
        lc_hits = sum(run[n]["target"] == run[n]["record"]["target"] for n in lc)
        auc = auroc([run[n]["p"] for n in bd], [run[n]["p"] for n in clean])
        lc_auc = auroc([run[n]["p"] for n in lc], [run[n]["p"] for n in clean])
        bd_flag = sum(run[n]["status"] == "BACKDOORED" for n in bd)
        secs = sum(run[n]["record"]["seconds"] for n in before) / len(before)
        print(f"{label}: clean BACKDOORED {len(flagged)}/{len(clean)} {flagged}, clean SUSPICIOUS+ {len(warned)}/"
              f"{len(clean)}; LC target {lc_hits}/{len(lc)}; AUROC {auc:.3f} (LC {lc_auc:.3f}); backdoored flagged "
              f"{bd_flag}/{len(bd)}; {secs:.1f} s/model")
    lost = [n for n in bd if before[n]["record"]["attack"] in ("badnets", "sig") and before[n]["status"] ==
            "BACKDOORED" and after[n]["status"] != "BACKDOORED"]
    print("BadNets/SIG models that lose BACKDOORED:", lost or "none")
    nc = [(before[n]["record"].get("neural_cleanse") or {}).get("target") == before[n]["record"]["target"] for n in lc]
    print(f"Neural Cleanse LC target: {sum(nc)}/{len(lc)}")
    if cut is not None:
        shipped = {n: before[n]["status"] == "BACKDOORED" for n in before}
        at_cut = {n: before[n]["p"] >= cut for n in before}
        def counts(flags: dict) -> str:
            return (f"clean flagged {sum(flags[n] for n in clean)}/{len(clean)}, "
                    f"backdoored missed {sum(not flags[n] for n in bd)}/{len(bd)}")
        print(f"before, shipped cut: {counts(shipped)}; cut {cut:.2f}: {counts(at_cut)}")
        by_p = sorted(before, key=lambda n: before[n]["p"])
        print("clean p before, highest first:", [round(before[n]["p"], 3) for n in reversed(by_p) if n in clean])
        print("backdoored p before, lowest first:", [round(before[n]["p"], 3) for n in by_p if n in bd][:10])


if __name__ == "__main__":
    args = sys.argv[1:]
    cut = None
    if args[:1] == ["--cut"]:
        cut, args = float(args[1]), args[2:]
    main(args, cut)
