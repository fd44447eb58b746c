"""Pre-registered comparison (PREREGISTERED.md): GTSRB records of the shipped scanner (v1) and of
trigger recovery v2 (share-candidates.patch), both judged by the 43-class cuts shipped then (calibration-v1.json).

    python docs/bench/gtsrb/share-candidates/compare.py [s400 s420 ...]   # > compare.txt
"""
import json
import sys
from pathlib import Path

from modelscan_bd.bench import auroc, reported_target
from modelscan_bd.verdict import Calibration, probability

HERE = Path(__file__).resolve().parent

cal = Calibration(**json.load(open(HERE / 'calibration-v1.json')))  # the file shipped at the first try
D = str(HERE.parent) + '/'
v1 = {'s400': D + 'results-mmbd2.json', 's420': D + 'results-blind-s420-mmbd2.json', 's440': D + 'results-blind-s440.json',
      's460': D + 'results-blind-s460.json', 's480': D + 'results-blind-s480.json', 's500': D + 'results-blind-s500.json'}
v2 = {z: str(HERE / f'results-v2-{z}.json') for z in v1}
b, s_, _ = cal.cuts_for(43)


def load(files, zoos, cal=cal):
    """The records of ``zoos`` (``files``: zoo -> results.json), each scored by ``cal``."""
    out = []
    for z in zoos:
        for r in json.load(open(files[z]))['records']:
            r['zoo'] = z
            r['p'] = probability(r['features'], cal)[0]
            out.append(r)
    return out


def summary(recs, label):
    y = [bool(r['backdoored']) for r in recs]
    ps = [r['p'] for r in recs]
    ns = [r for r in recs if r['attack'] != 'source_specific']
    tp = sum(r['p'] >= b for r in recs if r['backdoored'])
    fp = sum(r['p'] >= b for r in recs if not r['backdoored'])
    tacc = sum(reported_target(r, cal) == r['target'] for r in recs if r['backdoored'] and r['attack'] != 'source_specific')
    print(f"{label}: {len(recs)} models AUROC {auroc(ps, y):.3f} (w/o SS {auroc([r['p'] for r in ns], [bool(r['backdoored']) for r in ns]):.3f})"
          f" TPR {tp}/{sum(y)} FPR {fp}/{len(y) - sum(y)} target {tacc}/{len(ns) - sum(not r['backdoored'] for r in ns)}"
          f" s/model {sum(r['seconds'] for r in recs) / len(recs):.1f}")


def main():
    zoos = [z for z in v1 if len(sys.argv) < 2 or z in sys.argv[1:]]
    old, new = load(v1, zoos), load(v2, zoos)
    summary(old, 'v1')
    summary(new, 'v2')
    for z in zoos:
        summary([r for r in old if r['zoo'] == z], f'  v1 {z}')
        summary([r for r in new if r['zoo'] == z], f'  v2 {z}')
    for o, n in zip(old, new):
        assert o['name'] == n['name']
        if abs(o['p'] - n['p']) > 0.02 or o['candidate'] != n['candidate']:
            print(f"    {o['zoo']} {o['name']:28} target {str(o['target']):>4}  v1 cand {o['candidate']:>2} p {o['p']:.3f}"
                  f"  ->  v2 cand {n['candidate']:>2} p {n['p']:.3f}")


if __name__ == '__main__':
    main()
