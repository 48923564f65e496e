#!/usr/bin/env bash
# Figures of docs/results.md "What each rule costs, per phase": PhyLL, FF, PAT and backprop on the same physical
# network, costs per phase (setup, per training epoch, evaluation) and to a common validation
# target. Run from the repository root inside the virtual environment:
#   bash benchmarks/costs.sh [OUT]
set -euo pipefail
OUT="${1:-runs/costs}"
mkdir -p "$OUT"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
phyll compare --dataset vowels7 --seeds 3 \
    --rules phyll,ff,pat,backprop-ideal,phyll-nophysics,phyll-readout \
    --out "$OUT/vowels7" --overwrite --quiet
phyll compare --dataset digits --seeds 3 --rules phyll,ff,pat,backprop-ideal,phyll-readout \
    --out "$OUT/digits" --overwrite --quiet
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
