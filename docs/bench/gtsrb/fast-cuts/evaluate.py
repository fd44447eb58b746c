"""The pre-registered check of 43-class cuts for the `fast` calibration (PREREGISTERED.md): GTSRB
records scanned at `fast`, judged by the file's own cut and by the fitted 43-class cuts.

    python docs/bench/gtsrb/fast-cuts/evaluate.py   # > evaluate.txt
"""
import json
from pathlib import Path

from modelscan_bd.bench import auroc, reported_target
from modelscan_bd.verdict import Calibration, probability

HERE = Path(__file__).resolve().parent
CAL = Calibration(**json.load(open(HERE / 'calibration-fast-cuts43.json')))
FIT, BLIND = ['s400', 's420', 's440'], ['s460', 's480', 's500', 's520']


def load(zoos):
    out = []
    for z in zoos:
        for r in json.load(open(HERE / f'results-fast-{z}.json'))['records']:
            out.append({**r, 'zoo': z, 'p': probability(r['features'], CAL)[0]})
    return out


def line(recs, label):
    own, cut43 = CAL.cuts_for(10)[0], CAL.cuts_for(43)[0]
    bd, cl = [r for r in recs if r['backdoored']], [r for r in recs if not r['backdoored']]
    ns = [r for r in recs if r['attack'] != 'source_specific']
    right = sum(reported_target(r, CAL) == r['target'] for r in ns if r['backdoored'])
    print(f"{label}: {len(recs)} models AUROC {auroc([r['p'] for r in recs], [r['backdoored'] for r in recs]):.3f}"
          f" (w/o SS {auroc([r['p'] for r in ns], [r['backdoored'] for r in ns]):.3f});"
          f" own cut {own:.3f}: TPR {sum(r['p'] >= own for r in bd)}/{len(bd)} FPR {sum(r['p'] >= own for r in cl)}/{len(cl)};"
          f" 43-class cut {cut43:.3f}: TPR {sum(r['p'] >= cut43 for r in bd)}/{len(bd)}"
          f" FPR {sum(r['p'] >= cut43 for r in cl)}/{len(cl)}; right target {right}/{sum(r['backdoored'] for r in ns)};"
          f" s/model {sum(r['seconds'] for r in recs) / len(recs):.1f}")


def main():
    fit, blind = load(FIT), load(BLIND)
    line(blind, 'blind (s460-s520)')
    line(fit, 'fitting zoos (s400-s440)')
    line(fit + blind, 'all')
    for z in FIT + BLIND:
        line([r for r in fit + blind if r['zoo'] == z], f'  {z}')
    cut43 = CAL.cuts_for(43)[0]
    for r in blind:
        if (r['p'] >= cut43) != bool(r['backdoored']):
            print(f"    miss/false alarm: {r['zoo']} {r['name']} target {r['target']} cand {r['candidate']} p {r['p']:.3f}")


if __name__ == '__main__':
    main()
