"""Target rule with MM-BD before unflagged trigger/collapse labels: simulated on committed bench records."""
import glob, json, collections, sys
sys.path.insert(0, '/work/main')
import modelscan_bd.scan as scan
from modelscan_bd import bench
from modelscan_bd.verdict import shipped_calibration

orig = scan._suspected_targets

def candidate(results):
    trig = results.get("trigger-recovery") or {}
    if not trig.get("flagged"):
        for key in ("signal-trigger", "warp-trigger"):
            r = results.get(key) or {}
            if r.get("flagged"):
                return [int(r["label"])]
        signal = results.get("signal-trigger") or {}
        if signal.get("works") and signal.get("label") is not None:
            return [int(signal["label"])]
        m = results.get("mmbd") or {}
        if m.get("flagged") and m.get("label") is not None:
            return [int(m["label"])]
    return orig(results)

seen = {}
for f in sorted(glob.glob('/work/main/docs/bench/**/*.json', recursive=True)):
    try:
        d = json.load(open(f))
    except Exception:
        continue
    if not isinstance(d, dict) or 'records' not in d or not isinstance(d['records'], list):
        continue
    prov = d.get('provenance') or {}
    zoo = prov.get('zoo') or f
    budget = prov.get('budget') or 'standard'
    for r in d['records']:
        if not isinstance(r, dict) or 'mmbd_label' not in r or not r.get('backdoored') or r.get('type') not in bench.TARGETED_TYPES:
            continue
        b = r.get('budget') or budget
        key = (str(zoo).rstrip('/').split('/')[-1], r['name'], b)
        seen.setdefault(key, (r, b, f))

def run(rule, r, b):
    cal = shipped_calibration(b)
    mm = r['features'].get('mmbd_neglog10_p')
    # reported_target rebuilds results without mmbd; add it
    scan._suspected_targets = lambda res: rule({**res, "mmbd": {"label": r.get('mmbd_label'),
                                                          "flagged": mm is not None and mm > 1.3010299956639813}})
    try:
        return bench.reported_target(r, cal)
    finally:
        scan._suspected_targets = orig

tab = collections.defaultdict(lambda: [0, 0, 0])
changes = []
for (zoo, name, b), (r, _, f) in sorted(seen.items()):
    a, c = run(orig, r, b), run(candidate, r, b)
    arch = bench.record_architecture(r) or r.get('arch')
    k = (b, arch, r['attack'])
    tab[k][0] += 1; tab[k][1] += a == r['target']; tab[k][2] += c == r['target']
    if a != c:
        changes.append((zoo, name, b, r['target'], a, c))
print("budget arch attack: n, right now, right with MM-BD rule")
for k, v in sorted(tab.items(), key=str):
    print(k, v)
tot = [sum(v[i] for v in tab.values()) for i in range(3)]
print('total', tot)
print('changed:')
for c in changes:
    print(' ', c, 'better' if c[5] == c[3] else ('worse' if c[4] == c[3] else 'both wrong'))
