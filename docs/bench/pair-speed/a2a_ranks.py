"""Where an all-to-all model's planted pairs (s -> s+1) rank among the 90 screened pair sizes.

    python docs/bench/pair-speed/a2a_ranks.py a2a-screen-s2820.jsonl
"""
import json
import sys

for line in open(sys.argv[1]):
    r = json.loads(line)
    sizes, slots = r["snaps"]["200"], r["slots"]
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    rank = {tuple(slots[i]): n + 1 for n, i in enumerate(order)}
    print(f"{r['name']:24} ranks of the 10 (s, s+1) pairs among {len(sizes)}:",
          [rank[(s, (s + 1) % 10)] for s in range(10)], f"score {r['score']:.3f}")
