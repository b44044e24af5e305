#!/usr/bin/env bash
# The real-OBS tests, N times in a row, while stress-ng loads the CPU (the acceptance loop of issue 11).
#
#   tests/obs/obs_stress_loop.sh [N=30] [stress-ng CPU workers=2]
#
# Stops at the first failing run and keeps everything of it (pytest output, OBS logs, the harness's
# log of how OBS was stopped) under $M2FP_STRESS_DIR (default: a new /tmp/m2fp-obs-stress-* folder);
# the folders of passing runs are removed, their pytest output is kept.  Needs stress-ng (apt).
# Only the stress-ng process this script started is stopped at the end.
set -u
cd "$(dirname "$0")/../.."

N=${1:-30}
WORKERS=${2:-2}
TESTS=(tests/obs/test_obs_filter.py tests/obs/test_obs_framesync.py tests/obs/test_obs_render_count.py)
OUT=${M2FP_STRESS_DIR:-$(mktemp -d /tmp/m2fp-obs-stress-XXXXXX)}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/shared:$PWD/inference_server:$PWD/obs_plugin${PYTHONPATH:+:$PYTHONPATH}"

command -v stress-ng >/dev/null || { echo "stress-ng is not installed (apt install stress-ng)" >&2; exit 2; }
stress-ng --cpu "$WORKERS" --timeout 0 --quiet &
STRESS=$!
trap 'kill "$STRESS" 2>/dev/null; wait "$STRESS" 2>/dev/null' EXIT

start=$(date +%s)
passed=0
for i in $(seq 1 "$N"); do
    t0=$(date +%s)
    python -m pytest -q -p no:cacheprovider --basetemp "$OUT/run-$i" "${TESTS[@]}" > "$OUT/run-$i.log" 2>&1
    rc=$?
    t1=$(date +%s)
    summary=$(tail -n 1 "$OUT/run-$i.log")
    # the harness writes harness.log only when OBS did not quit through its window (SIGTERM / SIGKILL used)
    signalled=$(find "$OUT/run-$i" -name harness.log 2>/dev/null | wc -l)
    echo "run $i/$N: exit $rc in $((t1 - t0)) s: $summary; OBS stopped by a signal: $signalled" \
        | tee -a "$OUT/summary.txt"
    if [ "$rc" -ne 0 ] || [ "$signalled" -ne 0 ] || ! grep -qE "passed" <<<"$summary" \
            || grep -qE "failed|error|skipped" <<<"$summary"; then
        echo "stopped at run $i: its output is $OUT/run-$i.log, its OBS folders $OUT/run-$i/" | tee -a "$OUT/summary.txt"
        exit 1
    fi
    passed=$((passed + 1))
    rm -rf "$OUT/run-$i"
done
echo "$passed/$N runs passed in $(( $(date +%s) - start )) s under stress-ng --cpu $WORKERS; logs in $OUT" \
    | tee -a "$OUT/summary.txt"
