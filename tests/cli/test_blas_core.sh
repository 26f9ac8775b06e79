#!/usr/bin/env bash
# The OpenBLAS kernels a run used are in its trace (root attribute blas_core), and a user's
# OPENBLAS_CORETYPE is respected, never replaced by frugal's own choice (core/blas.hpp).
#   bash test_blas_core.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
set -euo pipefail
bin=$1 src=$2 scratch=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
mkdir -p "$scratch"
# Forcing Haswell's kernels needs a CPU with AVX2 + FMA (x86-64); elsewhere there is nothing to test.
if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
  echo "skip: no AVX2 + FMA on this CPU"
  exit 77
fi
run() {  # run NAME [ENV=VALUE ...]: a 2-step tiny run; prints its trace's blas_core
  local name=$1
  shift
  env "$@" "$bin" run "$src/configs/quickstart/tiny.toml" --run.steps=2 --eval.every=0 --run.name="$name" \
    --run.out_dir="$scratch" --run.overwrite=true >"$scratch/$name.log" 2>&1 || { cat "$scratch/$name.log" >&2; fail "run $name"; }
  "$bin" info "$scratch/$name/trace.h5" blas_core
}
core=$(run user OPENBLAS_CORETYPE=Haswell)
[ "$core" = Haswell ] || fail "OPENBLAS_CORETYPE=Haswell was set, the trace says blas_core '$core'"
core=$(run auto)
case $core in
  Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Sandybridge|Unknown|"") fail "an AVX2 CPU ran OpenBLAS's '$core' kernels" ;;
esac
echo "ok: blas_core '$core' by default, the user's Haswell when asked"
