"""Compare trigger statistics from wide_refs.py records: AUROC of the trigger feature alone, and right target."""
import json
import math
import sys
from statistics import median

from modelscan_bd.bench import auroc
from modelscan_bd.detectors.trigger import _log_ratio as lr  # the shipped statistic, not a copy of it


def mad_z(ref, s):
    ls = [math.log(max(r, 1e-4)) for r in ref]
    m = median(ls)
    d = 1.4826 * median(abs(x - m) for x in ls) or 0.05
    return (m - math.log(max(s, 1e-4))) / d


def stat(rec, variant):
    by = {(t, sh): (s, hs) for t, sh, s, hs in rec["triggers"]}
    cands, refs = rec["cands"], rec["refs"]
    labels = cands + (refs[:2] if variant == "cur" else refs)
    best = None
    for lab in labels:
        for sh in ("patch", "blend"):
            s, hs = by[(lab, sh)]
            if variant in ("cur", "all6"):
                r = lr([by[(o, sh)][0] for o in labels if o != lab], s)
            elif variant == "refs":
                r = lr([by[(o, sh)][0] for o in refs if o != lab], s)
            elif variant == "madrefs":
                r = mad_z([by[(o, sh)][0] for o in refs if o != lab], s)
            key = (r * hs, r)
            if best is None or key > best[0]:
                best = (key, lab, sh, r)
    return best[3], best[1], best[2]


files = sys.argv[1:]
for f in files:
    recs = [json.loads(line) for line in open(f)]
    print(f"== {f}: {len(recs)} models")
    for v in ("cur", "all6", "refs", "madrefs"):
        scores, ys, right, rows = [], [], 0, []
        for r in recs:
            sc, lab, sh = stat(r, v)
            scores.append(sc)
            ys.append(int(r["target"] is not None))
            if r["target"] is not None:
                right += lab == r["target"]
            rows.append(f"{r['name'][7:]}:{sc:.2f}{'*' if r['target'] is not None and lab == r['target'] else ''}")
        bd = [s for s, y in zip(scores, ys) if y]
        cl = [s for s, y in zip(scores, ys) if not y]
        print(f"{v:8s} AUROC {auroc(scores, ys):.3f} right {right}/{sum(ys)} clean max {max(cl):.2f} "
              f"bd min {min(bd):.2f} | " + " ".join(rows))
