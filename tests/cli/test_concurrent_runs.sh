#!/usr/bin/env bash
# Two jobs must never corrupt a trace. 20 processes start the same run (one run folder) at the
# same moment, three times: plain (one runs; the rest are refused because the folder is in use or
# already holds a trace), with --run.overwrite=true (they take turns under the folder's lock or are
# refused), and with --checkpoint.resume=auto (one runs, the others find it in use or finished).
# Every time, the trace left behind opens with h5dump and h5py, says finished, and holds exactly
# the rows of one run; every refusal names the reason.
#   bash test_concurrent_runs.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
set -uo pipefail
bin=$1 src=$2 scratch=$3
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
n=20 steps=6
python=${FRUGAL_PYTHON:-}

round() {  # round NAME EXTRA_ARGS...
  local name=$1
  shift
  local pids=() ok=0 refused=0 other=0
  for i in $(seq 1 $n); do
    OMP_NUM_THREADS=1 "$bin" run "$src/configs/quickstart/tiny.toml" --run.out_dir="$scratch/runs" --run.name=shared \
      --run.steps=$steps --run.log_every=0 --eval.every=3 --eval.batches=1 "$@" > "$name.$i.log" 2>&1 &
    pids+=($!)
  done
  for i in $(seq 1 $n); do
    if wait "${pids[$((i - 1))]}"; then
      ok=$((ok + 1))
    elif grep -qE "is in use by another run \(pid [0-9]+ on |already holds a trace" "$name.$i.log"; then
      refused=$((refused + 1))
    else
      other=$((other + 1))
      echo "--- unexpected failure in $name.$i.log:"; tail -5 "$name.$i.log"
    fi
  done
  [ $other -eq 0 ] || fail "$name: $other process(es) failed for another reason"
  [ $ok -ge 1 ] || fail "$name: no process ran"
  local trace=$scratch/runs/shared/trace.h5
  if command -v h5dump >/dev/null; then h5dump -H "$trace" > /dev/null || fail "$name: h5dump cannot open the trace"; fi
  "$bin" info "$trace" | grep -q "status *finished" || fail "$name: the trace does not say finished"
  rows=$("$bin" info "$trace" | sed -n 's/.*steps\/ (\([0-9]*\) rows).*/\1/p')
  [ "$rows" = "$steps" ] || fail "$name: the trace holds $rows step rows, not $steps"
  if [ -n "$python" ] && "$python" -c "import h5py" 2>/dev/null; then
    "$python" - "$trace" "$steps" <<'PY' || fail "$name: h5py finds the trace inconsistent"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    steps = int(sys.argv[2])
    assert f.attrs["status"] == "finished"
    assert list(f["steps/step"][...]) == list(range(1, steps + 1)), f["steps/step"][...]
    assert list(f["eval/step"][...]) == [3, 6], f["eval/step"][...]
    assert np.all(np.isfinite(f["steps/loss"][...]))
PY
  fi
  echo "ok:   $name: $n concurrent starts -> $ok ran, $refused refused with the reason; the trace is intact"
}

round plain
# The same run again, now that it exists: all 20 are refused except none (no overwrite), trace intact.
pids=()
for i in $(seq 1 $n); do
  OMP_NUM_THREADS=1 "$bin" run "$src/configs/quickstart/tiny.toml" --run.out_dir="$scratch/runs" --run.name=shared \
    --run.steps=$steps --run.log_every=0 > "again.$i.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" && fail "a start without overwrite replaced an existing run"; done
echo "ok:   again: all $n starts without overwrite refused"
round overwrite --run.overwrite=true
round resume --checkpoint.resume=auto --run.overwrite=false
grep -l "already finished" resume.*.log > /dev/null || echo "note: no resume=auto start came after the run finished"
echo "1 passed, 0 failed"
