#!/usr/bin/env bash
# The GPU check, one command, for a session that has a GPU (issues "Ranks own GPUs" and "EGGROLL on
# the GPU"): the machine, a CUDA build, every GPU test, short runs of the ported methods (cpu vs
# cuda), then the GPU benchmarks. Everything it prints also lands in $OUT (default ./gpu_check_out):
# env.txt, build.log, tests.log, bench.log, run_<method>_<device>.log. Budget: under 10 minutes on
# a 16-core H200 machine (the build is most of it).
#
#   bash bench/gpu_check.sh                                   # from the repository root
#   GPU_CHECK_BUNDLE=gpu_bundle.tgz bash bench/gpu_check.sh   # programs prebuilt by gpu_bundle.sh
#   GPU_CHECK_QUICK=1 ...                                     # the benchmarks' smaller grids (--quick)
#
# Building needs what setup.sh installs (MPI, HDF5, OpenBLAS, toml++, Random123, GoogleTest,
# Benchmark, zstd) plus the CUDA toolkit; a missing one is named before anything is built. A node
# without them runs a bundle instead (bench/gpu_bundle.sh; no build, no MPI run). Exit status: 0
# when every step passed, 1 when a test failed, 2 when the machine cannot build or run frugal.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
BUILD=${GPU_CHECK_BUILD:-build/gpu}
mkdir -p "$OUT"
log() { echo "gpu_check: $*" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"
status=0

# ---- the machine ----------------------------------------------------------------------------------
{
  date -u
  uname -a
  nproc
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  nvcc --version 2>&1 | tail -2 || true
  cmake --version 2>&1 | head -1 || true
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || log "no GPU visible (nvidia-smi -L failed): the GPU tests will skip"

# ---- a prebuilt bundle: unpack it and find CUDA's libraries on this node --------------------------
if [ -n "${GPU_CHECK_BUNDLE:-}" ]; then
  BUILD=$(mktemp -d)
  tar xzf "$GPU_CHECK_BUNDLE" -C "$BUILD" || { log "cannot unpack $GPU_CHECK_BUNDLE"; exit 2; }
  export LD_LIBRARY_PATH="$BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  probes=("$(ls "$BUILD"/tests/test_cuda_* | head -1)")
  [ -x "$BUILD/frugal" ] && probes+=("$BUILD/frugal")
  # cuBLAS, cudart and NCCL (which the bundle leaves out) outside the loader's path: look for them,
  # NCCL in the toolkit or in a Python package (nvidia-nccl-cu13).
  if ldd "${probes[@]}" | grep -q "not found"; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $(find / -xdev \( -name 'libcublas.so.1*' \
             -o -name 'libnccl.so.2*' \) -not -path '*/proc/*' 2>/dev/null | xargs -r -n1 dirname | sort -u); do
      [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
    done
  fi
  if ldd "${probes[@]}" | grep "not found"; then log "bundle programs cannot load these libraries here"; exit 2; fi
  log "running the prebuilt bundle $GPU_CHECK_BUNDLE (no build)"
else
  # ---- otherwise: what the build needs, then the build ---------------------------------------------
  missing=()
  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || missing+=("nvcc (CUDA toolkit)")
  command -v cmake >/dev/null || missing+=(cmake)
  command -v mpicxx >/dev/null || missing+=("MPI (mpicxx)")
  for h in hdf5.h toml++/toml.h Random123/philox.h gtest/gtest.h benchmark/benchmark.h zstd.h; do
    found=0
    for d in /usr/include /usr/local/include /usr/include/hdf5/serial; do [ -e "$d/$h" ] && found=1; done
    [ $found = 1 ] || missing+=("$h")
  done
  if ((${#missing[@]})); then
    log "cannot build frugal here, missing: ${missing[*]} (setup.sh installs them on Debian 12; or run a bundle)"
    exit 2
  fi
  log "building into $BUILD (CUDA, sm_90)"
  if ! { cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFRUGAL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 &&
         cmake --build "$BUILD" -j "$(nproc)"; } >"$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"
    log "build failed (build.log)"
    exit 2
  fi
  grep "frugal: CUDA" "$OUT/build.log" | tee -a "$OUT/summary.txt"
fi

# ---- every GPU test (tests/cuda): each kernel against its CPU twin --------------------------------
# Order: the tests, then the short runs, then the benchmarks (the slowest, and only timings).
: >"$OUT/tests.log"
for t in "$BUILD"/tests/test_cuda_*; do
  [ -x "$t" ] || continue
  echo "== $t" >>"$OUT/tests.log"
  "$t" >"$OUT/one.log" 2>&1
  rc=$?
  cat "$OUT/one.log" >>"$OUT/tests.log"
  counts=$(grep -E "^\[  (PASSED|SKIPPED|FAILED)  ?\] [0-9]+ test" "$OUT/one.log" | sed 's/^\[ *//; s/ *\]//' | tr '\n' ' ')
  if [ $rc = 0 ]; then
    log "$(basename "$t"): ok - $counts"
  else
    log "$(basename "$t"): FAILED (rc $rc) - $counts (tests.log)"
    grep -E "^\[  FAILED  \]" "$OUT/one.log" | tee -a "$OUT/summary.txt"
    status=1
  fi
done
rm -f "$OUT/one.log"

# ---- short runs: the same small config on the CPU and on the GPU, per ported method --------------
# run.device = cuda against run.device = cpu, the final evaluations compared:
#   ddp        model and AdamW on the GPU, gradients all-reduced through the host
#   ddp-nccl   the same, gradients all-reduced by NCCL on the GPUs (run.device_comm = nccl)
#   ddp-bf16   the same with model.dtype = bf16 (bf16 activations and GEMMs, fp32 master weights) against
#              the fp32 CPU run: 3e-2, bf16's 2^-8 rounding of every stored value carried through 30 steps
#   diloco     inner steps wholly on the GPU, the outer step on the host (parameters staged)
#   sparseloco the same, the compression and exchange on the host
#   demo       forward and backward on the GPU, compression and sign update on the host
#   eggroll    the population's perturbed policy forwards and the update GEMMs on the GPU (Pendulum)
#   openai_es  the same with full-rank noise
#   est        the sampled subnetworks' forward and backward on the GPU (slices gathered there), the
#              masked AdamW there, the packed gradients all-reduced through the host
#   sft        forward, token head, backward and AdamW on the GPU (arithmetic task); compared on the
#              last step's training loss, since 20 steps leave the greedy accuracy at 0 on both
#   sft-nccl   the same, gradients all-reduced by NCCL on the GPUs
#   eggroll_lm the population's perturbed KV-cached generation and the update GEMMs on the GPU, from
#              the sft run's model: a smoke run end to end (that base earns almost no reward, so the
#              updates are near 0); test_cuda_decode compares the generations token for token
#   grpo       full fine-tuning: generation, the policy and reference log-prob passes, backward and
#              AdamW on the GPU, from the same base (accuracy ~2%: a few of 256 eval problems, so one
#              greedy answer flipped by rounding moves it by 1/256 - hence 0.25 relative)
#   grpo_lora  the same with LoRA: the adapters' products on the GPU, their AdamW on the host
# ddp, ddp-nccl, diloco, est and sft must agree to 1e-3 relative (cuBLAS vs OpenBLAS summation order,
# compounded over 30 steps); sparseloco and demo to 2e-2: a top-k near a tie or a sign near zero
# can go the other way on rounding-level differences, and then the runs part by a selection. The ES
# runs to 1e-2: 200-step Pendulum episodes carry a rounding-level difference in a policy's output
# through the dynamics into the return. Two ranks under mpirun where this build has its own MPI; one
# rank (an MPI singleton) when running a bundle, whose MPI library need not match the node's mpirun.
if [ ! -x "$BUILD/frugal" ]; then
  log "no short runs: no frugal executable in $BUILD"
else
launch=()
[ -z "${GPU_CHECK_BUNDLE:-}" ] && command -v mpirun >/dev/null && launch=(mpirun --allow-run-as-root --oversubscribe -np 2)
tiny=(configs/quickstart/tiny.toml)
pendulum=(configs/rl/pendulum.toml --run.steps=6 --eval.every=3 --es.population=64)
sft=(configs/rlvr/arithmetic.toml --run.steps=20 --eval.every=20 --eval.batches=16)
est=(configs/est/base.toml --run.steps=30 --eval.every=30)  # all three stages: sampled blocks, heads/units, dense
elm=(configs/rlvr/arithmetic.toml --run.steps=3 --eval.every=3 --model.init_from="$OUT/runs/sft-cpu/model.bin")
grpo=("${elm[@]}" --grpo.finetune=full)
grpo_lora=("${elm[@]}" --grpo.finetune=lora)
# name : method : tolerance : config array : the line compared (the last eval, or the last step)
for run in ddp:ddp:1e-3:tiny:eval ddp-nccl:ddp:1e-3:tiny:eval ddp-bf16:ddp:3e-2:tiny:eval diloco:diloco:1e-3:tiny:eval \
           sparseloco:sparseloco:2e-2:tiny:eval demo:demo:2e-2:tiny:eval eggroll:eggroll:1e-2:pendulum:eval \
           openai_es:openai_es:1e-2:pendulum:eval sft:sft:1e-3:sft:step sft-nccl:sft:1e-3:sft:step est:est:1e-3:est:eval \
           eggroll_lm:eggroll_lm:1e-3:elm:eval grpo:grpo:0.25:grpo:eval \
           grpo_lora:grpo:0.25:grpo_lora:eval; do
  IFS=: read -r name method tol config line <<<"$run"
  declare -n args=$config
  for device in cpu cuda; do
    extra=()
    [ "${name#*-}" = nccl ] && [ $device = cuda ] && extra=(--run.device_comm=nccl)
    [ "$name" = ddp-bf16 ] && [ $device = cuda ] && extra=(--model.dtype=bf16)
    # A bundle's Open MPI loads its plugins from the node's Open MPI install: a node without one (or
    # with an incompatible one) fails here in MPI_Init, said in the log; timeout: never the budget.
    if ! timeout 300 "${launch[@]}" "$BUILD"/frugal run "${args[@]}" --run.out_dir="$OUT/runs" \
         --run.method=$method --run.name=$name-$device --run.overwrite=true --run.device=$device "${extra[@]}" \
         >"$OUT/run_${name}_$device.log" 2>&1; then
      tail -20 "$OUT/run_${name}_$device.log"
      log "short $name run ($device) failed (run_${name}_$device.log)"
      status=1
    fi
  done
  unset -n args
  # "eval  step N | loss X ..." and "step N/M | loss X ...": the value is field 6 or 5.
  pattern='^eval  step' field=6
  [ "$line" = step ] && pattern='^step ' field=5
  cpu_eval=$(grep "$pattern" "$OUT/run_${name}_cpu.log" | tail -1 | awk -v f=$field '{print $f}')
  gpu_eval=$(grep "$pattern" "$OUT/run_${name}_cuda.log" | tail -1 | awk -v f=$field '{print $f}')
  if [ -n "$cpu_eval" ] && [ -n "$gpu_eval" ] &&
     awk -v a="$cpu_eval" -v b="$gpu_eval" -v t="$tol" 'BEGIN { d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a; exit !(d <= t * m) }'; then
    log "short $name runs (${launch[*]:-1 rank}): last $line cpu $cpu_eval, cuda $gpu_eval - agree to $tol"
  else
    log "short $name runs: last $line cpu '${cpu_eval}', cuda '${gpu_eval}' - DISAGREE (> $tol) or missing"
    status=1
  fi
done
grep -h "devices\|frugal:" "$OUT/run_ddp_cuda.log" | head -2 | tee -a "$OUT/summary.txt"
rm -rf "$OUT/runs"
fi

# ---- benchmarks ------------------------------------------------------------------------------------
# The GPU benchmarks the issues ask for (GPT-2 124M step on one GPU, NCCL all-reduce, EGGROLL's
# perturbed forward on the device, generation) run here as they land: every bench/ executable named
# *_gpu*. Last, after the tests and the short runs, so that a check cut short by its time limit has
# lost only timings. GPU_CHECK_QUICK=1 passes --quick to the benchmarks that take it (smaller grids).
: >"$OUT/bench.log"
for b in "$BUILD"/bench/bench_*gpu*; do
  [ -x "$b" ] || continue
  echo "== $b" | tee -a "$OUT/bench.log"
  args=()
  [ "${GPU_CHECK_QUICK:-0}" = 1 ] && grep -q -- "--quick" "$b" && args=(--quick)
  timeout 300 "$b" "${args[@]}" 2>&1 | tee -a "$OUT/bench.log" || { log "$(basename "$b") failed"; status=1; }
done
[ -s "$OUT/bench.log" ] || log "no GPU benchmark built yet (bench/*gpu*)"

log "done, exit $status"
exit $status
