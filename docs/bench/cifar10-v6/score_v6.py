"""Zoo v6 (PROTOCOL.md): the standard file shipped before v6 (A) and the file fitted on all ordinary v4
and v5 models (B), scored by ``bench.metrics`` on the same records (all of v6; s1400 as a second look),
and the protocol's rule applied. B has been ``classifier.json`` since fd63dfc, so A comes from git.
Usage, from the repository root:

    git show fd63dfc^:modelscan_bd/calibration/classifier.json > /tmp/before-v6.json
    python docs/bench/cifar10-v6/score_v6.py /tmp/before-v6.json

``scores.txt`` was written with the target rule of its day; since docs/bench/target-rule the target
figures read 0.957 for both files on v6 (detection figures unchanged).
"""
import json
import sys

from modelscan_bd import bench, verdict

FILES = [("A: classifier.json (v2 fit)", sys.argv[1]),
         ("B: fitted on v4 and v5 (v45)", "docs/bench/cifar10-v6/calibration-standard-v45.json")]
ZOOS = [("v6 (all kept)", "docs/bench/cifar10-v6/results-standard.json"),
        ("s1400 (second look)", "docs/bench/cifar10-v4/blind-s1400-standard.json")]


def line(name: str, m: dict, n_bd: int, n_clean: int) -> str:
    t5 = "-" if m["tpr_at_5fpr"] is None else f"{m['tpr_at_5fpr']:.3f}"
    return (f"  {name:38s} AUROC {m['auroc']:.3f} TPR@5%FPR {t5} TPR {round(m['tpr'] * n_bd)}/{n_bd} "
            f"FPR {round(m['fpr'] * n_clean)}/{n_clean} target {m['target_accuracy']:.3f} s {m['seconds_per_model']:.1f}")


rule = {}
for zoo, path in ZOOS:
    records = json.load(open(path))["records"]
    print(f"{zoo}: {sum(r['backdoored'] for r in records)} backdoored, {sum(not r['backdoored'] for r in records)} clean "
          f"({sum(r['hard'] for r in records)} hard)")
    for name, file in FILES:
        cal = verdict.load_calibration(file, budget="standard")
        m = bench.metrics(records, cal, 10)
        n_bd, n_clean = m["backdoored"], m["clean"]
        misses, false_flags = n_bd - round(m["tpr"] * n_bd), round(m["fpr"] * n_clean)
        clean_p = [bench.model_probability(r, cal, 10) for r in records if not r["backdoored"]]
        cut_b, cut_s, _ = cal.cuts_for(10)
        alarms = sum(p >= cut_s for p in clean_p)
        print(line(name, m, n_bd, n_clean) + f" log loss {m['log_loss']:.3f}")
        print(f"    cuts {cut_b:.3f}/{cut_s:.3f}; errors {misses} missed + {false_flags} clean flagged = "
              f"{misses + false_flags}; alarms (clean SUSPICIOUS or worse) {alarms}/{len(clean_p)}; "
              f"hard clean flagged: {m['hard_clean_fpr']}")
        hard = [(r["name"], round(bench.model_probability(r, cal, 10), 3)) for r in records if r["hard"]]
        print(f"    hard models' probabilities: {hard}")
        for attack, a in sorted(m["per_attack"].items()):
            print(f"    {attack:17s} n={a['models']:2d} detected {a['detection_rate']:.3f} AUROC vs clean "
                  + ("-" if a.get("auroc_vs_clean") is None else f"{a['auroc_vs_clean']:.3f}"))
        if zoo.startswith("v6"):
            rule[name[0]] = (m["auroc"], misses + false_flags, alarms)
    for base in ("neural_cleanse", "ebyd_variance"):
        print(line(base, m[base], m["backdoored"], m["clean"]))

(auc_a, err_a, al_a), (auc_b, err_b, al_b) = rule["A"], rule["B"]
ship = auc_b >= auc_a and err_b <= err_a and al_b <= al_a
print(f"rule: AUROC B {auc_b:.3f} >= A {auc_a:.3f}: {auc_b >= auc_a}; errors B {err_b} <= A {err_a}: {err_b <= err_a}; "
      f"alarms B {al_b} <= A {al_a}: {al_b <= al_a} -> {'ship B' if ship else 'A stays'}")
