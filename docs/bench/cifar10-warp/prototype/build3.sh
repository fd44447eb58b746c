#!/bin/bash
# After build2.sh: the WaNet pilot zoo seed 300 at the 0.75 bar (held out from the warp detector's tuning).
while ! grep -q BUILD2-DONE /work/runs/s28/build2.log; do sleep 20; done
export PYTHONPATH=/work/wt
cd /work/runs/s28
time /work/main/.venv/bin/python -m modelscan_bd.cli zoo build classifiers --data cifar10 --out /work/zoo-wanet300 \
  --clean 2 --backdoored 10 --attacks wanet:s=4 --epochs 40 --train-size 8000 --jobs 2 --seed 300 --min-asr 0.75
echo BUILD3-DONE
