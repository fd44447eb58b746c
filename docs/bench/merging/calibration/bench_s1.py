import sys, time, datetime as dt
import torch
from pathlib import Path
from modelscan_bd.gate_bench import run_merging_bench
deadline = dt.datetime(2026, 11, 30, 13, 21, tzinfo=dt.timezone.utc).timestamp()
cal = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
res = run_merging_bench(Path("/work/zoo-gate2/zoo-s1"), Path(sys.argv[1]), budget="fast", seed=0, clean_budget=150,
                        threads=1, variant_calibration=cal, deadline=deadline,
                        command="modelscan-bd zoo build merging --data synthetic --out ZOO --clean 8 --backdoored 9 "
                                "--train-size 3000 --epochs 4 --seed 1; python: modelscan_bd.gate_bench."
                                "run_merging_bench(ZOO, budget='fast', clean_budget=150, threads=1, "
                                "variant_calibration=calibration/merging.json, deadline=13:21 UTC)",
                        progress=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
print(res["markdown"])
