#!/usr/bin/env bash
# Bad input gets a clear error naming the problem, a non-zero exit, and loses nothing:
#   unknown key, wrong type, impossible value, missing config/data/checkpoint file, malformed
#   checkpoint and token shard, a checkpoint of another shape than the config, a shard shorter than
#   one batch, run names that would escape run.out_dir, a rank count the batch cannot be split over,
#   a NaN loss (whose trace must stay readable with status "failed"), a run folder that already
#   holds a trace, and one that another run holds (its lock).
#   bash test_errors.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
set -uo pipefail
bin=$1 src=$2 scratch=$3
config=$src/configs/quickstart/tiny.toml
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch" || exit 1
failures=0

# expect_error "description" "expected message fragment" command...
expect_error() {
  local what=$1 fragment=$2
  shift 2
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "FAIL: $what: exit 0, expected an error"; failures=$((failures + 1))
  elif ! grep -qF -- "$fragment" <<<"$out"; then
    echo "FAIL: $what: message lacks '$fragment':"; echo "$out" | tail -5; failures=$((failures + 1))
  else
    echo "ok:   $what (exit $rc): $(grep -F -- "$fragment" <<<"$out" | head -1)"
  fi
}
run() { "$bin" run "$config" --run.out_dir="$scratch/runs" --run.overwrite=true --run.log_every=0 "$@"; }

expect_error "unknown key" "unknown config key 'optim.learning_rate'" run --optim.learning_rate=1
expect_error "misspelt key gets a suggestion" "did you mean 'model.n_layer'" run --model.n_layers=2
expect_error "wrong type" "expects type integer" run --model.n_layer=two
expect_error "impossible value" "must be divisible by model.n_head" run --model.n_embd=30 --model.n_head=4
expect_error "out of range" "below its minimum" run --data.batch_size=0
expect_error "unknown device" "run.device" run --run.device=tpu
expect_error "NCCL for CPU buffers" 'run.device_comm = "nccl" moves GPU buffers' run --run.device_comm=nccl
expect_error "GPU precision on the CPU" 'model.dtype = "bf16" sets the precision of GPU GEMMs' run --model.dtype=bf16
# run.device = cuda for a method still on the CPU (ppo) is an error on every machine, each with
# its own reason: no GPU visible (this CI), a build without CUDA, or - with a GPU - the method. Never
# a CPU run.
out=$(run --run.name=cuda-asked --run.method=ppo --run.device=cuda 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
  echo "FAIL: run.device = cuda: exit 0 (a CPU run under a cuda label)"; failures=$((failures + 1))
elif grep -qE 'no CUDA device is visible on|built without CUDA|runs on the CPU only so far' <<<"$out"; then
  echo "ok:   run.device = cuda (exit $rc): $(grep -E 'run.device' <<<"$out" | head -1)"
else
  echo "FAIL: run.device = cuda: unexpected message:"; echo "$out" | tail -5; failures=$((failures + 1))
fi
[ ! -e "$scratch/runs/cuda-asked/trace.h5" ] || { echo "FAIL: run.device = cuda left a trace"; failures=$((failures + 1)); }
expect_error "missing config file" "could not be opened" "$bin" run "$scratch/absent.toml"
expect_error "missing text file" "cannot open text file '$scratch/absent.txt'" run --data.source=text --data.path="$scratch/absent.txt"
expect_error "missing llm.c checkpoint" "cannot open llm.c checkpoint" run --model.init_from="$scratch/absent.bin"
printf 'not a checkpoint, not even close ...' > bad_model.bin
expect_error "malformed llm.c checkpoint" "too short for its 1024-byte header" run --model.init_from=bad_model.bin
head -c 2048 /dev/urandom > bad_shard.bin
expect_error "malformed token shard" "bad magic" run --data.source=shards --data.path=bad_shard.bin
expect_error "unknown command" "unknown command 'rn'" "$bin" rn "$config"
expect_error "method name" "is not one of" run --run.method=sgd
expect_error "environment name" "is not one of" run --run.method=ppo --env.name=CartPole-v0
expect_error "odd ES population" "es.population must be even" run --run.method=eggroll --es.population=7
expect_error "PPO minibatches" "must divide each rank's batch" run --run.method=ppo --ppo.num_minibatches=7
expect_error "EST stages out of order" "est.stage1_end (0.8) must not be after est.stage2_end (0.5)" \
  run --run.method=est --est.stage1_end=0.8 --est.stage2_end=0.5
expect_error "EST rate of 0" "est.stage2_mlp must be > 0" run --run.method=est --est.stage2_mlp=0
expect_error "EST rate above 1" "above its maximum" run --run.method=est --est.stage1_heads=1.5
expect_error "EST unselected-parameter policy" "is not one of" run --run.method=est --est.unselected=freeze

# Run names that would write outside run.out_dir (or into it directly).
expect_error "run name with .." "run.name '..' must be a plain folder name" run --run.name=..
expect_error "run name with a slash" "run.name '../escape' must be a plain folder name" run --run.name=../escape
expect_error "empty run name" "run.name '' must be a plain folder name" run --run.name=
[ -e "$scratch/escape" ] && { echo "FAIL: a run wrote outside run.out_dir"; failures=$((failures + 1)); }
# A checkpoint of another shape than the config's model: named, not silently trained.
"$bin" run "$config" --run.out_dir="$scratch/runs" --run.name=shape --run.steps=1 --run.log_every=0 --eval.batches=0 \
  --run.overwrite=true >/dev/null 2>&1
# An llm.c checkpoint with 3 layers (the header says so; the tiny config has 2): build one by hand.
"${FRUGAL_PYTHON:-python3}" - <<'PY' 2>/dev/null || true
import struct
L, maxT, V, NH, C, Vp = 3, 32, 512, 2, 32, 512
header = [20240326, 3, maxT, V, L, NH, C, Vp] + [0] * 248
n = Vp * C + maxT * C + L * (C + C + 3 * C * C + 3 * C + C * C + C + C + C + 4 * C * C + 4 * C + 4 * C * C + C) + C + C
with open("three_layers.bin", "wb") as f:
    f.write(struct.pack("<256i", *header))
    f.write(struct.pack(f"<{n}f", *([0.01] * n)))
PY
expect_error "checkpoint of another shape" "is a model with n_layer = 3" run --model.init_from=three_layers.bin
# A token shard shorter than one batch of sequences.
"${FRUGAL_PYTHON:-python3}" - <<'PY' 2>/dev/null || true
import struct
tokens = list(range(100))  # 100 tokens: 3 sequences of 32, fewer than a batch of 8
with open("short_shard.bin", "wb") as f:
    f.write(struct.pack("<256i", *([20240520, 1, len(tokens)] + [0] * 253)))
    f.write(struct.pack(f"<{len(tokens)}H", *tokens))
PY
expect_error "shard shorter than one batch" "fewer than one batch" run --data.source=shards --data.path=short_shard.bin

if [ -n "${MPIEXEC:-}" ]; then
  expect_error "rank count the batch cannot be split over" "must be divisible by the number of ranks (3)" \
    "$MPIEXEC" -np 3 --oversubscribe "$bin" run "$config" --run.out_dir="$scratch/runs" --run.overwrite=true --data.batch_size=8
  expect_error "rank count the ES population cannot be split over" "es.population 8 must be divisible by the number of ranks (3)" \
    "$MPIEXEC" -np 3 --oversubscribe "$bin" run "" --run.method=eggroll --es.population=8 --run.out_dir="$scratch/runs" --run.overwrite=true
  expect_error "rank count the PPO environments cannot be split over" "ppo.num_envs 4 must be divisible by the number of ranks (3)" \
    "$MPIEXEC" -np 3 --oversubscribe "$bin" run "" --run.method=ppo --run.out_dir="$scratch/runs" --run.overwrite=true
fi

# NaN loss: non-zero exit, a message naming it, and a trace that is still readable and says so.
expect_error "NaN loss" "training loss is not finite at step 7" run --run.name=nan --debug.nan_at_step=7
status=$("$bin" info "$scratch/runs/nan/trace.h5" | awk '$1 == "status" {print $2}')
if [ "$status" != "failed" ]; then echo "FAIL: NaN run trace status is '$status', expected failed"; failures=$((failures + 1)); fi
"$bin" info "$scratch/runs/nan/trace.h5" | grep -q "status_message *training loss is not finite" \
  || { echo "FAIL: NaN run trace lacks the message"; failures=$((failures + 1)); }
rows=$("$bin" info "$scratch/runs/nan/trace.h5" | sed -n 's/.*steps\/ (\([0-9]*\) rows).*/\1/p')
[ "$rows" = "6" ] || { echo "FAIL: NaN run trace should keep its 6 good steps, has '$rows'"; failures=$((failures + 1)); }

# An existing run is never overwritten by accident.
"$bin" run "$config" --run.out_dir="$scratch/runs" --run.name=keep --run.steps=2 --run.log_every=0 >/dev/null 2>&1
expect_error "existing run folder" "already holds a trace" "$bin" run "$config" --run.out_dir="$scratch/runs" --run.name=keep
"$bin" info "$scratch/runs/keep/trace.h5" | grep -q "status *finished" || { echo "FAIL: existing trace was damaged"; failures=$((failures + 1)); }

# A run folder another process holds (its .lock): refused at once, naming the holder; the holder's
# trace is untouched.
"${FRUGAL_PYTHON:-python3}" - "$scratch/runs/keep/.lock" <<'PY' &
import fcntl, sys, time
with open(sys.argv[1], "r+") as f:
    fcntl.lockf(f, fcntl.LOCK_EX)
    f.seek(0); f.truncate(); f.write("pid 4242 on testhost (Slurm job 77) since now\n"); f.flush()
    time.sleep(4)
PY
holder=$!
sleep 1
expect_error "run folder held by another run" "is in use by another run (pid 4242 on testhost (Slurm job 77)" \
  "$bin" run "$config" --run.out_dir="$scratch/runs" --run.name=keep --run.overwrite=true
wait $holder
"$bin" info "$scratch/runs/keep/trace.h5" | grep -q "status *finished" || { echo "FAIL: the held run's trace was damaged"; failures=$((failures + 1)); }
# resume=auto on a finished run: nothing to do, exit 0, the trace not reopened.
before=$(stat -c %Y "$scratch/runs/keep/trace.h5")
if out=$("$bin" run "$config" --run.out_dir="$scratch/runs" --run.name=keep --checkpoint.resume=auto 2>&1) \
  && grep -q "already finished" <<<"$out" && [ "$(stat -c %Y "$scratch/runs/keep/trace.h5")" = "$before" ]; then
  echo "ok:   a finished run given resume=auto is left alone"
else
  echo "FAIL: resume=auto on a finished run: $out"; failures=$((failures + 1))
fi

echo "$((failures == 0 ? 1 : 0)) passed, $failures failed"
[ $failures -eq 0 ]
