#!/bin/bash
# Rebuild the WaNet pilot zoo seed 302 and the 40-epoch clean zoo seed 303 (same commands as the pilot).
export PYTHONPATH=/work/wt
M=/work/main/.venv/bin/python
cd /work/runs/s28
time $M -m modelscan_bd.cli zoo build classifiers --data cifar10 --out /work/zoo-wanet302 --clean 3 --backdoored 8 \
  --attacks wanet:s=4 --epochs 40 --train-size 8000 --jobs 2 --seed 302 --min-asr 0.75
time $M -m modelscan_bd.cli zoo build classifiers --data cifar10 --out /work/zoo-clean40-303 --clean 6 --backdoored 0 \
  --epochs 40 --train-size 8000 --jobs 2 --seed 303
echo BUILD-DONE
