"""Blind zoo s640 (built and scanned 2026-12-04, rule in cuts-preregistered.md): its records scored by the
shipped `standard` calibration, alone and pooled with the earlier blind zoos (s460-s520) and with every
GTSRB zoo (source-specific/pooled.py's 101 models).

    python docs/bench/gtsrb/blind_s640.py   # > blind_s640.txt
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "source-specific"))
import pooled  # noqa: E402  (its records() and line() score by the shipped calibration)

S640 = {"s640": HERE / "results-blind-s640.json"}
BLIND = {z: pooled.OLD[z] for z in ("s460", "s480", "s500", "s520")}


def main():
    new, blind = pooled.records(S640), pooled.records(BLIND)
    pooled.line("s640", new)
    pooled.line("s640, the file's own cut", new, pooled.CAL.backdoored_threshold)
    pooled.line("blind zoos s460-s520 (as before)", blind)
    pooled.line("blind zoos s460-s520 + s640", blind + new)
    pooled.line("blind zoos s460-s520 + s640, the file's own cut", blind + new, pooled.CAL.backdoored_threshold)
    pooled.line("every GTSRB zoo (the 101 of source-specific/pooled.txt) + s640", pooled.every_zoo() + new)
    for r in new:
        print(f"  {r['name']:22} target {str(r['target']):>4}  p {r['p']:.3f}  candidate {r['candidate']}  "
              f"{r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
