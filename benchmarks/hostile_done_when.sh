#!/usr/bin/env bash
# Issue 25's "Done when" list, each case in a fresh process: exit status, stderr lines, peak RSS
# (GNU time) and wall time. Every case must exit 2 in one line under 1 GB and 60 s.
#   benchmarks/hostile_done_when.sh [WORKDIR]
# Needs /usr/bin/time (GNU) and python with phyll importable (PYTHONPATH=src from a checkout).
set -u
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cd "$work" || exit 1
py=${PYTHON:-python}
tiny=(--dataset vowels --epochs 1 --blocks 1 --width 8 --measurements 8 --quiet)

"$py" - <<'EOF'
import numpy as np, os, zipfile
# a CSV with 10^6 columns (header and one row)
with open("wide.csv", "w") as f:
    f.write(",".join(f"c{i}" for i in range(10**6)) + ",label\n")
    f.write(",".join("0" for _ in range(10**6)) + ",1\n")
# a zip bomb: 1 GiB of zeros declared, ~1 MB on disk
with zipfile.ZipFile("bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2**18, 1024)})
        block = bytes(2**20)
        for _ in range(1024):
            f.write(block)
    with z.open("y.npy", "w") as f:
        np.save(f, np.zeros(2**18, dtype=np.int64))
EOF

"$py" -m phyll.cli train "${tiny[@]}" --checkpoint-every 1 --out run >/dev/null 2>&1
cp -r run fifo_run && rm fifo_run/checkpoint.pt && mkfifo fifo_run/checkpoint.pt
cp -r run flipped_run
"$py" - <<'EOF'
p = "flipped_run/model.pt"
data = bytearray(open(p, "rb").read())
for i in range(16):
    data[len(data) // 2 + i] ^= 0xFF
open(p, "wb").write(bytes(data))
EOF
mkdir proj && echo "my table" >proj/table.md
mkdir -p real && cp -r run real/run && ln -s real/run linked

check() {
  local name=$1
  shift
  local rc lines rss wall
  /usr/bin/time -f "%M %e" -o time.txt timeout 120 "$@" >/dev/null 2>err.txt
  rc=$?
  lines=$(grep -c . err.txt)
  read -r rss wall < <(tail -n 1 time.txt)
  printf '%-34s rc=%s lines=%s rss=%sMB wall=%ss  %s\n' "$name" "$rc" "$lines" \
    "$((rss / 1024))" "$wall" "$(head -c 150 err.txt)"
}
check "train --width 1048576" "$py" -m phyll.cli train "${tiny[@]}" --width 1048576 --out w
check "train --measurements 4194304" "$py" -m phyll.cli train "${tiny[@]}" --measurements 4194304 --out m
check "adc_bits=99999999999999999999" "$py" -m phyll.cli train "${tiny[@]}" --system acoustic \
  --system-param adc_bits=99999999999999999999 --out a
check "CSV with 10^6 columns" "$py" -m phyll.cli train "${tiny[@]/vowels/csv:wide.csv}" --out c
check "zip-bomb NPZ" "$py" -m phyll.cli train "${tiny[@]/vowels/npz:bomb.npz}" --out z
check "FIFO checkpoint, --resume" "$py" -m phyll.cli train --resume fifo_run --epochs 2
check "predict, model.pt flipped" "$py" -m phyll.cli predict flipped_run /dev/null
check "compare onto a user's table.md" "$py" -m phyll.cli compare "${tiny[@]}" --rules phyll \
  --seeds 1 --out proj
cmp -s proj/table.md <(echo "my table") && echo "  table.md unchanged" || echo "  table.md CHANGED"
before=$(cd real/run && sha256sum model.pt)
check "--overwrite onto a symlink" "$py" -m phyll.cli train "${tiny[@]}" --out linked --overwrite
[ "$(cd real/run && sha256sum model.pt)" = "$before" ] && echo "  old run intact" || echo "  old run LOST"
check "TrainConfig(seed=1.5)" "$py" -c "import phyll, sys
try:
    phyll.TrainConfig(seed=1.5)
except phyll.UserError as exc:
    print(exc, file=sys.stderr); sys.exit(2)"
