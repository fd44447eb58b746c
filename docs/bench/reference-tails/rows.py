"""Every committed ten-class ResNet scan at budget `standard`, one row per (zoo, model): the verdict's features
from the latest bench record that has them, and the clean-reference features measured outside bench
records (pair-trigger's development rows, feature-trigger's first clean rows). Zoos s2840, s2850 and s2860 are
left out: they are the refit's held-out tests (PLAN.md, NOTES.md).

    python docs/bench/reference-tails/rows.py   # prints counts per group"""
import collections
import glob
import json
import os
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REFERENCE_FEATURES = ("warp_fragility", "feature_gap", "pair_score")
HELD_OUT = {"cifar10-mix-s2840", "cifar10-mix-s2850", "cifar10-mix-s2860"}  # the held-out zoos (PLAN.md, NOTES.md)


def _bench_records():
    """(zoo, name) -> [(date, record)] over every committed bench or bench-pool file at `standard`."""
    out = collections.defaultdict(list)
    for f in sorted(glob.glob(str(BENCH / "**" / "*.json"), recursive=True)):
        try:
            d = json.loads(Path(f).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(d, dict) or "records" not in d or "provenance" not in d:
            continue
        prov = d["provenance"]
        if prov.get("budget") != "standard":
            continue
        for r in d["records"]:
            if not isinstance(r, dict) or "features" not in r:
                continue
            parts = r["name"].split("/")  # bench-pool names records ".../zoo/model"
            zoo = parts[-2] if len(parts) > 1 else os.path.basename(str(prov.get("zoo")).rstrip("/"))
            out[(zoo, parts[-1])].append((prov.get("date") or "", r))
    return out


def _extra_measurements():
    """(zoo, name) -> {feature: value}, with each row's attack and hard flag, from the measurement files."""
    from modelscan_bd.detectors.pair import pair_score

    out = {}
    for f in ("cifar10-source-specific/dev.jsonl", "cifar10-source-specific/other-clean.jsonl"):
        for line in (BENCH / f).read_text().splitlines():
            r = json.loads(line)
            score = r.get("score")
            if score is None:
                score = pair_score(r["crowd_gap"], r["holdout_success"], r["off_source_success"])
            out[(r["zoo"], r["name"])] = {"attack": r["attack"], "hard": r["hard"], "pair_score": score}
    for r in json.loads((BENCH / "feature-trigger/dev-clean-ia.json").read_text())["rows"]:
        out.setdefault((r["zoo"], r["name"]), {"attack": r["attack"], "hard": r["hard"]})["feature_gap"] = r["gap"]
    return out


def load_rows() -> list[dict]:
    """One row per ten-class ResNet model: zoo, name, attack, hard, backdoored, features (None where unknown)."""
    rows = {}
    for (zoo, name), found in _bench_records().items():
        found.sort(key=lambda x: x[0])
        r = found[-1][1]
        if zoo in HELD_OUT or r.get("num_classes") != 10 or r.get("arch") != "resnet":
            continue
        features = dict(r["features"])
        for f in REFERENCE_FEATURES:  # a pooled record may carry a step the zoo's own record lacks
            features[f] = next((x[1]["features"][f] for x in reversed(found) if x[1]["features"].get(f) is not None), None)
        rows[(zoo, name)] = {"zoo": zoo, "name": name, "attack": r["attack"], "hard": bool(r.get("hard")),
                             "backdoored": bool(r["backdoored"]), "features": features}
    for key, extra in _extra_measurements().items():
        row = rows.setdefault(key, {"zoo": key[0], "name": key[1], "attack": extra["attack"] or "clean",
                                    "hard": bool(extra["hard"]), "backdoored": (extra["attack"] or "clean") != "clean",
                                    "features": {}})
        for f in REFERENCE_FEATURES:
            if row["features"].get(f) is None and extra.get(f) is not None:
                row["features"][f] = extra[f]
    return sorted(rows.values(), key=lambda r: (r["zoo"], r["name"]))


def group(r: dict) -> str:
    return ("hard clean" if r["hard"] else "clean") if r["attack"] == "clean" else r["attack"]


if __name__ == "__main__":
    rows = load_rows()
    print(f"{len(rows)} models of {len({r['zoo'] for r in rows})} zoos")
    for f in REFERENCE_FEATURES:
        have = [r for r in rows if r["features"].get(f) is not None]
        c = collections.Counter(group(r) for r in have)
        zoos = {r["zoo"] for r in have if group(r) == "clean"}
        print(f"{f}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())) + f"; ordinary clean from {len(zoos)} zoos")
