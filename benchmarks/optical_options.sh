#!/usr/bin/env bash
# The paper's optical architecture options against phyll's defaults, on *validation* accuracy
# (the selected epoch's; the test split is printed for the record, not used to choose):
# mnist5k 28×28, optical, PhyLL, the image defaults otherwise (docs/results.md "The paper's optical architecture"),
# labels appended unless a row writes them into the image (the overlay became the image
# default after these runs and seeds 1–2 of the overlay).
#   append           labels appended as 10 drive channels, every camera pixel, skip connection
#   overlay          labels written into the image's top two rows (--label-encoding overlay)
#   pool             camera pixels averaged over 3×3 windows, stride 2 (--pool 3 --pool-stride 2)
#   overlay+pool     both (the paper's optical layer)
#   physics-only     no skip connection (--no-skip): the digital weights see the camera alone
#   paper            overlay, pooling and no skip
#   two-blocks       a second optical block driven by the first one's 256 hidden features,
#                    laid out on its SLM (16 × 16 macro-pixels) in raster order (--blocks 2)
# Run from the repository root inside the virtual environment:
#   bash benchmarks/optical_options.sh [OUT] [SEEDS]      (SEEDS: default "0")
set -euo pipefail
OUT="${1:-runs/optical-options}"
SEEDS="${2:-0}"
mkdir -p "$OUT"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A OPTIONS=(
    [append]="--label-encoding append"
    [overlay]="--label-encoding overlay"
    [pool]="--label-encoding append --pool 3 --pool-stride 2"
    [overlay+pool]="--label-encoding overlay --pool 3 --pool-stride 2"
    [physics-only]="--label-encoding append --no-skip"
    [paper]="--label-encoding overlay --pool 3 --pool-stride 2 --no-skip"
    [two-blocks]="--label-encoding append --blocks 2"
)
for name in append overlay pool overlay+pool physics-only paper two-blocks; do
    for seed in $SEEDS; do
        start=$SECONDS
        # shellcheck disable=SC2086
        phyll train --dataset mnist5k --system optical --seed "$seed" ${OPTIONS[$name]} \
            --out "$OUT/$name-seed$seed" --overwrite --quiet
        echo "$name seed $seed: $((SECONDS - start)) s"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
print("| option | seed | validation (%) | test (%) | digital FLOPs |")
print("|---|---|---|---|---|")
for summary in sorted(Path(sys.argv[1]).glob("*/summary.json")):
    s = json.loads(summary.read_text())
    name, _, seed = summary.parent.name.rpartition("-seed")
    print(f"| {name} | {seed} | {100 * s['val_accuracy']:.1f} | {100 * s['test_accuracy']:.1f} "
          f"| {s['digital_flops']:.3g} |")
PY
