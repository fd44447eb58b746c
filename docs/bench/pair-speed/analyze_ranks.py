"""The early-drop analysis: for every model and checkpoint, the largest rank part-way of a pair that ends among
the 10 smallest (in brackets: the 3 refined).   python docs/bench/pair-speed/analyze_ranks.py RANKS.jsonl"""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
checks = [k for k in rows[0]['snaps'] if k != '200']
print('per model: the largest step-k rank (1-based) of a pair that ends among the 10 smallest (top-3 in brackets); unreached at k')
print('name'.ljust(32), ' '.join(f'k={k:>4}' for k in checks))
worst = {k: 0 for k in checks}
for r in rows:
    final = r['snaps']['200']
    order = sorted(range(len(final)), key=final.__getitem__)
    top10, top3 = order[:10], order[:3]
    cells = []
    for k in checks:
        s = r['snaps'][k]
        rank = {i: n + 1 for n, i in enumerate(sorted(range(len(s)), key=s.__getitem__))}
        need, need3 = max(rank[i] for i in top10), max(rank[i] for i in top3)
        unreached = sum(v >= 1.0 for v in s)
        worst[k] = max(worst[k], need)
        cells.append(f'{need:>3}[{need3:>2}]u{unreached:<2}')
    print(r['name'][:32].ljust(32), ' '.join(cells))
print('worst', worst)
