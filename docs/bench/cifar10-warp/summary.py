"""Score the warp-trigger detector's records (detect.jsonl): AUROC of fragility and of success,
WaNet against clean, per group; the detector's own flag; the target it names.

    python summary.py detect.jsonl > summary.json
"""
import json
import sys

from modelscan_bd.bench import auroc
from modelscan_bd.detectors.warp import DEFAULT_FRAGILITY, DEFAULT_SUCCESS, warp_found

TUNING = "zoo-wanet302"  # its models chose the statistic and the 2 px bound


def group(row: dict) -> str:
    zoo = row["key"].split("/")[0]
    if row["attack"] == "wanet":
        return "wanet-tuning" if zoo == TUNING else "wanet-held-out"
    if zoo == "zoo-clean20":
        return "clean-20-epochs" + ("-hard" if row["attack"] == "hard" else "")
    return "clean-40-epochs" + ("-tuning" if zoo == TUNING else "")


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    cal = {"fragility_threshold": DEFAULT_FRAGILITY, "success_threshold": DEFAULT_SUCCESS}
    out = {"groups": {}, "auroc": {}}
    for g in sorted({group(r) for r in rows}):
        rs = [r for r in rows if group(r) == g]
        out["groups"][g] = {
            "models": len(rs),
            "fragility": [min(r["fragility"] for r in rs), max(r["fragility"] for r in rs)],
            "success": [min(r["success"] for r in rs), max(r["success"] for r in rs)],
            "flagged": sum(warp_found(r["fragility"], r["success"], cal) for r in rs),
            "named_target": sum(r["label"] == r["target"] for r in rs) if rs[0]["target"] is not None else None,
            "seconds_mean": round(sum(r["sec"] for r in rs) / len(rs), 1),
        }
    clean = [r for r in rows if r["attack"] != "wanet"]
    for name, wanet in (("all WaNet", [r for r in rows if r["attack"] == "wanet"]),
                        ("held-out WaNet", [r for r in rows if group(r) == "wanet-held-out"])):
        for stat in ("fragility", "success"):
            scores = [r[stat] for r in wanet + clean]
            labels = [1] * len(wanet) + [0] * len(clean)
            out["auroc"][f"{name} vs all clean, {stat}"] = round(auroc(scores, labels), 4)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
