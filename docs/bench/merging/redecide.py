"""Re-decide a merging bench run from its cached scans (RUN/scan-cache.json, copied into OUT) under the current gate
code and a merging calibration: usage redecide.py ZOO OUT CALIBRATION. Scans and inversions are reused; the gate's
decisions (forward passes, leave-one-out) are made again."""
import sys, time
from pathlib import Path
from modelscan_bd.gate_bench import run_merging_bench
zoo, out, cal = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
res = run_merging_bench(zoo, out, budget="fast", seed=0, threads=1, variant_calibration=cal,
                        command=" ".join(sys.argv[4:]) or f"run_merging_bench({zoo}, variant_calibration={cal})",
                        progress=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
print(res["markdown"])
