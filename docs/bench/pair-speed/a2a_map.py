"""The minimum-cost map (source -> distinct target) over the screen's 90 log pair sizes, by bitmask assignment;
per model: median log size - the map's mean, the map's mean above the row minima, how many (s, s+1) it holds.

    python docs/bench/pair-speed/a2a_map.py ROWS.jsonl [...]
"""
import json, math, sys
def best_matching(cost, n):
    """min-cost assignment source->distinct target (cost[s][t], None where s==t), bitmask DP."""
    dp = {0: (0.0, [])}
    for s in range(n):
        nxt = {}
        for used, (c, path) in dp.items():
            for t in range(n):
                if t == s or used >> t & 1: continue
                v = c + cost[s][t]; key = used | 1 << t
                if key not in nxt or v < nxt[key][0]: nxt[key] = (v, path + [t])
        dp = nxt
    return min(dp.values())
def stat(row, n=10):
    sizes = row['snaps']['200']; slots = row['slots']
    cost = [[None]*n for _ in range(n)]
    for (s, t), v in zip(slots, sizes): cost[s][t] = math.log(max(v, 1e-6))
    total, perm = best_matching(cost, n)
    logs = sorted(math.log(max(v, 1e-6)) for v in sizes)
    med = logs[len(logs)//2]
    rowmin = sum(min(c for c in cost[s] if c is not None) for s in range(n)) / n
    return med - total / n, rowmin - total / n, perm, len(set(perm))
for f in sys.argv[1:]:
    for l in open(f):
        r = json.loads(l)
        gap, vs_rowmin, perm, ndist = stat(r)
        succ = sum(perm[s] == (s + 1) % 10 for s in range(10))
        print(r['name'][:30].ljust(30), r['attack'][:8].ljust(8), f"med-match {gap:6.3f}  rowmin-match {vs_rowmin:6.3f}  succ {succ}", perm)
