#!/bin/bash
# A/B timing of one scan, two source trees run alternately (host speed drifts, so never one after the other):
#   OLD=/path/to/checkout-of-97589fa NEW=/path/to/this-checkout ab_channels_last.sh MODEL_DIR CLEAN_NPZ OUT
# Each tree runs from its own folder so that Python imports that tree's modelscan_bd.
M=$1; D=$2; OUT=$3
for i in 1 2; do
  for tree in "$OLD" "$NEW"; do
    s=$(date +%s.%N)
    (cd "$tree" && python -m modelscan_bd.cli --threads 2 scan "$M" --clean-data "$D" --format json \
        --out "$OUT/$(basename "$tree")-$i" --quiet)
    e=$(date +%s.%N)
    echo "$tree $i $(python3 -c "print(round($e - $s, 1))")"
  done
done
