"""The merging bench's dare_linear row alone (fast, 150 clean images, 2 threads), with sampled merges now usable.

    .venv/bin/python docs/bench/merging/dare-bn/dare_gate.py ZOO OUT"""
import sys
from pathlib import Path

from modelscan_bd.gate_bench import run_merging_bench

res = run_merging_bench(Path(sys.argv[1]), Path(sys.argv[2]), budget="fast", clean_budget=150,
                        methods=("dare_linear",), threads=2,
                        command="run_merging_bench(merging-s1, methods=('dare_linear',), threads=2)",
                        progress=lambda m: print(m, flush=True))
print(res["markdown"])
