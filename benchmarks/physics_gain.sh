#!/usr/bin/env bash
# Does the physics compute? PhyLL on full-resolution mnist5k (28×28) next to its controls, with
# the defaults (the image profile: 1 block, 2,048 measurements, width 256, 1-pixel shifts,
# cosine learning rate; see docs/your-data.md "Defaults by dataset kind"), on the same split and seeds:
#   phyll-nophysics  the same network with the measurement removed (digital path alone)
#   random-features  the same network and rule, every system a fixed digital |R a|² map
#   linear           multinomial logistic regression on the raw pixels
#   mlp, backprop-ideal, pat (parts 2 and 4; slow)
# Parts: 1 the 2-seed check (under 20 minutes idle); 2 mnist5k optical and acoustic, 3 seeds,
# every rule and control; 3 unsupervised PhyLL on mnist5k optical with its controls, 3 seeds;
# 4 digits (8×8, tabular defaults) on acoustic (30 epochs) and microwave (10 epochs: a
# microwave query costs ~1 ms here), 3 seeds, every rule and control.
# Run from the repository root inside the virtual environment:
#   bash benchmarks/physics_gain.sh [OUT] [PART]     PART: 1, 2, 3, 4 or all
set -euo pipefail
OUT="${1:-runs/physics-gain}"
PART="${2:-1}"
mkdir -p "$OUT"
load() { echo "load $1: $(cut -d' ' -f1-3 /proc/loadavg)"; }
timed() { local start=$SECONDS; "$@"; echo "wall: $((SECONDS - start)) s for: $*"; }
load before
if [[ "$PART" == 1 || "$PART" == all ]]; then
    # the done-when: 2 seeds, under 20 minutes on the idle 2-core machine
    timed phyll compare --dataset mnist5k --system optical --seeds 2 \
        --rules phyll,phyll-nophysics,random-features,linear \
        --out "$OUT/mnist5k-optical" --overwrite --quiet
fi
if [[ "$PART" == 2 || "$PART" == all ]]; then
    for system in optical acoustic; do
        timed phyll compare --dataset mnist5k --system "$system" --seeds 3 \
            --rules phyll,phyll-nophysics,random-features,linear,mlp,backprop-ideal,pat \
            --out "$OUT/mnist5k-$system-3seeds" --overwrite --quiet
    done
fi
if [[ "$PART" == 3 || "$PART" == all ]]; then
    timed phyll compare --dataset mnist5k --system optical --seeds 3 \
        --rules phyll-unsup,phyll-unsup-nophysics,phyll-unsup-random-features,linear,mlp \
        --out "$OUT/mnist5k-optical-unsup" --overwrite --quiet
fi
if [[ "$PART" == 4 || "$PART" == all ]]; then
    timed phyll compare --dataset digits --system acoustic --seeds 3 \
        --rules phyll,phyll-nophysics,random-features,linear,mlp,backprop-ideal,pat \
        --out "$OUT/digits-acoustic" --overwrite --quiet
    timed phyll compare --dataset digits --system microwave --seeds 3 --epochs 10 \
        --rules phyll,phyll-nophysics,random-features,linear,mlp,backprop-ideal,pat \
        --out "$OUT/digits-microwave" --overwrite --quiet
fi
load after
python benchmarks/gain_tables.py "$OUT"
