#!/usr/bin/env bash
# Full MNIST (60,000 training / 10,000 test images) with the image defaults (docs/mnist.md).
# Run from the repository root inside the virtual environment, with the four standard IDX
# files (gzipped or not) in DATA:
#   bash benchmarks/mnist_full.sh DATA [OUT]
# 1. one timed optical run, seed 0, the defaults (the time and peak-memory figures: run it on
#    an idle machine); its last line is "wall_s=… peak_rss_mb=… test_accuracy=…";
# 2. the comparison, seeds 0-1: PhyLL optical next to the same network without physics, a
#    digital random map of the same size, and a digital MLP of matched digital FLOPs per
#    inference (resumable: run it again after an interruption);
# 3. PhyLL acoustic, seed 0 (the acoustic room at the image defaults).
set -euo pipefail
DATA=${1:?usage: bash benchmarks/mnist_full.sh DATA [OUT]}
OUT=${2:-runs/mnist-full}
mkdir -p "$OUT"
common=(--dataset mnist --data-path "$DATA" --quiet)

if [ ! -f "$OUT/optical-seed0/summary.json" ]; then
    /usr/bin/time -f "%e %M" -o "$OUT/optical-seed0.time" \
        phyll train "${common[@]}" --system optical --out "$OUT/optical-seed0"
fi
[ -f "$OUT/compare-optical/summary.json" ] ||
    phyll compare "${common[@]}" --system optical --seeds 2 \
        --rules phyll,phyll-nophysics,random-features,mlp-matched --out "$OUT/compare-optical"
[ -f "$OUT/acoustic-seed0/summary.json" ] ||
    phyll train "${common[@]}" --system acoustic --out "$OUT/acoustic-seed0"

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
timed = json.loads((out / "optical-seed0" / "summary.json").read_text())
acoustic = json.loads((out / "acoustic-seed0" / "summary.json").read_text())
for name, rule in json.loads((out / "compare-optical" / "summary.json").read_text())["rules"].items():
    acc = [f"{a:.2%}" for a in rule["test_accuracy_per_seed"]]
    print(f"optical {name}: {', '.join(acc)}; {rule['digital_flops_per_inference']:.3g} FLOPs/inference")
print(f"acoustic phyll seed 0: {acoustic['test_accuracy']:.2%}")
timing = out / "optical-seed0.time"
wall, rss_kb = timing.read_text().split()[-2:] if timing.exists() else ("nan", "0")
print(f"wall_s={float(wall):.0f} peak_rss_mb={int(rss_kb) / 1024:.0f} "
      f"test_accuracy={timed['test_accuracy']:.4f} threads={timed['torch_threads']}")
PY
