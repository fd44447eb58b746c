#!/bin/bash
Z=/work/zoo/cifar10-heldout-s2100
B=/work/main/.venv/bin/modelscan-bd
for m in resnet-badnets-005 resnet-badnets-013; do
  for cfg in "standard 1" "standard 2" "thorough 0"; do
    set -- $cfg
    /usr/bin/time -f "%e s" $B --threads 2 scan $Z/models/$m --budget $1 --seed $2 --clean-data $Z/clean-data.npz --out /work/runs/s53/diag/$m-$1-$2 --format json --quiet > /work/runs/s53/diag/$m-$1-$2.log 2>&1
    echo "$m $1 seed $2 rc=$? $(tail -1 /work/runs/s53/diag/$m-$1-$2.log)"
  done
done
echo DIAGDONE
