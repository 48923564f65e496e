#!/usr/bin/env bash
# Every rule on the same physical network (vowels7; not re-run for docs/ in this version).
# Run from the repository root inside the virtual environment:
#   bash benchmarks/compare_vowels7.sh
# 1. the real 7-vowel task (its own 210/49 split), 3 seeds, the five rules + honesty ablation;
# 2. the project's bar (≥ 97 % on the real task): the wider PhyLL network (width 128, 256
#    measurements, 60 epochs), 5 seeds, against ideal backprop and the honesty ablation;
# 3. the timed default comparison on the embedded vowels (target: under 10 min on 2 cores).
set -euo pipefail
mkdir -p runs
phyll compare --dataset vowels7 --seeds 3 \
    --rules phyll,ff,pat,backprop-ideal,backprop-transfer,phyll-nophysics \
    --out runs/compare-vowels7 --overwrite --quiet
phyll compare --dataset vowels7 --seeds 5 \
    --rules phyll,backprop-ideal,phyll-nophysics --epochs 60 --width 128 --measurements 256 \
    --out runs/compare-vowels7-wide --overwrite --quiet
/usr/bin/time -f "phyll compare --dataset vowels --system acoustic --seeds 3: %e s wall" \
    phyll compare --dataset vowels --system acoustic --seeds 3 \
    --out runs/compare-vowels --overwrite --quiet
