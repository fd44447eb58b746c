"""Zoo v5 (PROTOCOL.md): the standard file shipped before v5 and the file fitted on all ordinary v4
models, scored by ``bench.metrics`` on the same records (all of v5; s1400 as a second look). Usage:

    git show 7fb8229:modelscan_bd/calibration/classifier.json > /tmp/before-v5.json
    python docs/bench/cifar10-v5/score_v5.py /tmp/before-v5.json

``scores.txt`` was written with the target rule of its day; since docs/bench/target-rule the target
figures on v5 read higher (44/44 targeted backdoors; detection figures unchanged).
"""
import json
import sys

from modelscan_bd import bench, verdict

FILES = [("classifier.json before v5 (v2 fit)", sys.argv[1]),
         ("fitted on all of v4 (v4all)", "docs/bench/cifar10-v5/calibration-standard-v4all.json")]
ZOOS = [("v5 (all 77 kept)", "docs/bench/cifar10-v5/results-standard.json"),
        ("s1400 (second look)", "docs/bench/cifar10-v4/blind-s1400-standard.json")]


def line(name: str, m: dict, n_bd: int, n_clean: int) -> str:
    t5 = "-" if m["tpr_at_5fpr"] is None else f"{m['tpr_at_5fpr']:.3f}"
    return (f"  {name:38s} AUROC {m['auroc']:.3f} TPR@5%FPR {t5} TPR {round(m['tpr'] * n_bd)}/{n_bd} "
            f"FPR {round(m['fpr'] * n_clean)}/{n_clean} target {m['target_accuracy']:.3f} s {m['seconds_per_model']:.1f}")


for zoo, path in ZOOS:
    records = json.load(open(path))["records"]
    print(f"{zoo}: {sum(r['backdoored'] for r in records)} backdoored, {sum(not r['backdoored'] for r in records)} clean "
          f"({sum(r['hard'] for r in records)} hard)")
    for name, file in FILES:
        cal = verdict.load_calibration(file, budget="standard")
        m = bench.metrics(records, cal, 10)
        print(line(name, m, m["backdoored"], m["clean"]) + f" log loss {m['log_loss']:.3f}")
        clean_p = [bench.model_probability(r, cal, 10) for r in records if not r["backdoored"]]
        cut_b, cut_s, _ = cal.cuts_for(10)
        print(f"    cuts {cut_b:.3f}/{cut_s:.3f}; clean models SUSPICIOUS or worse: {sum(p >= cut_s for p in clean_p)}/"
              f"{len(clean_p)}; hard clean flagged: {m['hard_clean_fpr']}")
        for attack, a in sorted(m["per_attack"].items()):
            print(f"    {attack:17s} n={a['models']:2d} detected {a['detection_rate']:.3f} AUROC vs clean "
                  + ("-" if a.get("auroc_vs_clean") is None else f"{a['auroc_vs_clean']:.3f}"))
    for base in ("neural_cleanse", "ebyd_variance"):
        print(line(base, m[base], m["backdoored"], m["clean"]))
