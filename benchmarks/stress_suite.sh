#!/usr/bin/env bash
# The whole test suite beside a CPU burner: no test may depend on the machine being idle.
# Starts BURNERS busy loops (default 4: two per core on a 2-core box), runs `python -m pytest -q`
# (extra arguments are passed on), kills the loops it started (also on Ctrl-C or an error) and
# reports pass/fail and the duration. Run from the repository root inside the virtual
# environment:
#   bash benchmarks/stress_suite.sh [PYTEST ARGS...]
set -uo pipefail
BURNERS="${BURNERS:-4}"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait "${pids[@]}" 2>/dev/null
}
trap cleanup EXIT INT TERM
for _ in $(seq "$BURNERS"); do
    sh -c 'while :; do :; done' &
    pids+=("$!")
done
start=$(date +%s)
python -m pytest -q "$@"
status=$?
elapsed=$(( $(date +%s) - start ))
result=$([ "$status" -eq 0 ] && echo PASS || echo "FAIL (pytest exit $status)")
echo "stress suite: $result in ${elapsed} s beside $BURNERS busy loops on $(nproc) cores"
exit "$status"
