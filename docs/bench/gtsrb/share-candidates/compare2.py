"""Second try (PREREGISTERED.md): v1 (the shipped scanner and calibration) against v2 (share
candidates) judged by cuts refitted on v2 scores of the same 22 clean models (calibration-v2.json).

    python docs/bench/gtsrb/share-candidates/compare2.py   # > compare2.txt
"""
import json
from pathlib import Path

from compare import load  # this folder's first-try script
from modelscan_bd.bench import auroc, reported_target
from modelscan_bd.verdict import Calibration

HERE = Path(__file__).resolve().parent
D = HERE.parent
V1_CAL = Calibration(**json.load(open(HERE / 'calibration-v1.json')))  # main's file before this try
V2_CAL = Calibration(**json.load(open(HERE / 'calibration-v2.json')))
V1 = {'s400': D / 'results-mmbd2.json', 's420': D / 'results-blind-s420-mmbd2.json', 's440': D / 'results-blind-s440.json',
      's460': D / 'results-blind-s460.json', 's480': D / 'results-blind-s480.json', 's500': D / 'results-blind-s500.json',
      's520': HERE / 'results-v1-s520.json'}
V2 = {z: HERE / f'results-v2-{z}.json' for z in V1}


def summary(recs, label, cal):
    b = cal.cuts_for(43)[0]
    y = [bool(r['backdoored']) for r in recs]
    ns = [r for r in recs if r['attack'] != 'source_specific']
    tp = sum(r['p'] >= b for r in recs if r['backdoored'])
    fp = sum(r['p'] >= b for r in recs if not r['backdoored'])
    tacc = sum(reported_target(r, cal) == r['target'] for r in ns if r['backdoored'])
    print(f"{label}: {len(recs)} models AUROC {auroc([r['p'] for r in recs], y):.3f}"
          f" (w/o SS {auroc([r['p'] for r in ns], [bool(r['backdoored']) for r in ns]):.3f})"
          f" TPR {tp}/{sum(y)} FPR {fp}/{len(y) - sum(y)} target {tacc}/{sum(r['backdoored'] for r in ns)}"
          f" s/model {sum(r['seconds'] for r in recs) / len(recs):.1f}  (BACKDOORED cut {b:.3f})")


def main():
    zoos = [z for z in V1 if V1[z].exists() and V2[z].exists()]
    old, new = load(V1, zoos, V1_CAL), load(V2, zoos, V2_CAL)
    for name, group in [('all', zoos), ('blind to the cuts, s460+s480+s500', ['s460', 's480', 's500']),
                        ('blind, s520', ['s520'])] + [(z, [z]) for z in zoos]:
        if not set(group) <= set(zoos):
            continue
        summary([r for r in old if r['zoo'] in group], f'v1 {name}', V1_CAL)
        summary([r for r in new if r['zoo'] in group], f'v2 {name}', V2_CAL)
    for o, n in zip(old, new):
        assert o['name'] == n['name'] and o['zoo'] == n['zoo']
        if abs(o['p'] - n['p']) > 0.02 or o['candidate'] != n['candidate']:
            print(f"    {o['zoo']} {o['name']:28} target {str(o['target']):>4}  v1 cand {o['candidate']:>2} p {o['p']:.3f}"
                  f"  ->  v2 cand {n['candidate']:>2} p {n['p']:.3f}")


if __name__ == '__main__':
    main()
