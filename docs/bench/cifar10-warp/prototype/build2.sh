#!/bin/bash
# After build.sh: the WaNet pilot zoo seed 301 (evaluation: not used to tune the warp detector), then
# 20 clean models and the 3 hard clean models of the CIFAR-10 benchmark's recipe (seed 0: clean-000..019).
while ! grep -q BUILD-DONE /work/runs/s28/build.log; do sleep 20; done
export PYTHONPATH=/work/wt
M=/work/main/.venv/bin/python
cd /work/runs/s28
time $M -m modelscan_bd.cli zoo build classifiers --data cifar10 --out /work/zoo-wanet301 --clean 3 --backdoored 6 \
  --attacks wanet:s=4 --epochs 40 --train-size 8000 --jobs 2 --seed 301 --min-asr 0.75
time $M -m modelscan_bd.cli zoo build classifiers --data cifar10 --out /work/zoo-clean20 \
  --clean 20 --backdoored 0 --hard 3 --train-size 8000 --jobs 2 --seed 0
echo BUILD2-DONE
