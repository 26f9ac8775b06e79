#!/usr/bin/env bash
# A run killed with SIGKILL leaves a trace that h5dump and h5py open, with status "running" and
# every step up to its last flush - with the values of an uninterrupted run of the same config;
# `frugal run ... --checkpoint.resume=auto` then finishes it with exactly the uninterrupted values.
#   bash test_killed_run.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
set -uo pipefail
bin=$1 src=$2 scratch=$3
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
common=(--run.out_dir="$scratch" --run.name=killed --run.steps=30 --run.log_every=0 --trace.flush_every=5
        --checkpoint.every=10)
"$bin" run "$src/configs/quickstart/tiny.toml" "${common[@]}" --run.name=straight > straight.log 2>&1 \
  || { cat straight.log; fail "the uninterrupted reference run failed"; }
"$bin" run "$src/configs/quickstart/tiny.toml" "${common[@]}" --debug.kill_at_step=17 > run.log 2>&1
rc=$?
[ $rc -eq 137 ] || fail "expected the run to die by SIGKILL (exit 137), got $rc"
trace=$scratch/killed/trace.h5
if command -v h5dump >/dev/null; then
  h5dump -H "$trace" > /dev/null || fail "h5dump cannot open the killed run's trace"
  echo "ok:   h5dump -H opens the trace"
fi
"$bin" info "$trace" | grep -q "status *running" || fail "status is not 'running'"
rows=$("$bin" info "$trace" | sed -n 's/.*steps\/ (\([0-9]*\) rows).*/\1/p')
[ "$rows" = "15" ] || fail "expected the 15 steps flushed before the kill, found '$rows'"
echo "ok:   killed run: status running, $rows steps readable"
python=${FRUGAL_PYTHON:-}
if [ -n "$python" ] && "$python" -c "import h5py" 2>/dev/null; then
  "$python" - "$trace" "$scratch/straight/trace.h5" <<'PY' || fail "h5py cannot read the killed run's trace, or its values differ"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "r") as ref:
    assert f.attrs["status"] == "running", f.attrs["status"]
    assert len(f["steps/loss"]) == 15 and f["steps/step"][-1] == 15
    for col in ("step", "tokens", "loss", "lr", "grad_norm", "flops", "comm_bytes"):
        assert np.array_equal(f["steps"][col][...], ref["steps"][col][:15]), col
    assert np.array_equal(f["eval/loss"][...], ref["eval/loss"][:len(f["eval/loss"])]), "eval/loss"
print("ok:   h5py reads the killed trace; its 15 rows equal the uninterrupted run's first 15")
PY
fi
# Resume from the step-10 checkpoint and finish: the trace is cut back to step 10 and continued.
"$bin" run "$src/configs/quickstart/tiny.toml" "${common[@]}" --checkpoint.resume=auto > resume.log 2>&1 \
  || { cat resume.log; fail "resume failed"; }
grep -q "steps 10 -> 30 (resumed)" resume.log || fail "did not resume from step 10"
"$bin" info "$trace" | grep -q "status *finished" || fail "resumed run did not finish"
rows=$("$bin" info "$trace" | sed -n 's/.*steps\/ (\([0-9]*\) rows).*/\1/p')
[ "$rows" = "30" ] || fail "resumed trace should have 30 step rows, has '$rows'"
echo "ok:   resumed from step 10 to 30 in the same trace"
if [ -n "$python" ] && "$python" -c "import h5py" 2>/dev/null; then
  "$python" - "$trace" "$scratch/straight/trace.h5" <<'PY' || fail "the resumed trace differs from the uninterrupted run"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f, h5py.File(sys.argv[2], "r") as ref:
    for col in ("step", "tokens", "loss", "lr", "grad_norm", "flops", "comm_bytes"):
        assert np.array_equal(f["steps"][col][...], ref["steps"][col][...]), col
    for col in ("step", "loss"):
        assert np.array_equal(f["eval"][col][...], ref["eval"][col][...]), "eval/" + col
    assert f.attrs["final_eval_loss"] == ref.attrs["final_eval_loss"]
print("ok:   the resumed trace equals the uninterrupted run's, bit for bit")
PY
fi
echo "1 passed, 0 failed"
