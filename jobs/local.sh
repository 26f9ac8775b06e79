#!/usr/bin/env bash
# Run one experiment on this machine with NP MPI ranks, resuming from the run's last checkpoint.
#   jobs/local.sh NP CONFIG.toml [--section.key=value ...]
# Environment: FRUGAL_BIN (default build/release/frugal), MPIRUN (default mpirun, Open MPI),
# MPIRUN_FLAGS (extra launcher flags, split on spaces), OMP_NUM_THREADS / OPENBLAS_NUM_THREADS
# (default: the cores shared out evenly, at least 1 per rank).
set -euo pipefail

if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NP CONFIG.toml [--section.key=value ...]" >&2
  exit 2
fi
np=$1
config=$2
shift 2
[ -f "$config" ] || { echo "$0: config not found: $config" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${FRUGAL_BIN:-$root/build/release/frugal}
[ -x "$bin" ] || { echo "$0: no frugal binary at $bin (build it, or set FRUGAL_BIN)" >&2; exit 2; }

cores=$(nproc)
threads=$((cores / np))
((threads >= 1)) || threads=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$threads}

# -x hands the thread counts to every rank explicitly (Open MPI does not forward the whole
# environment to ranks on other hosts).
launch=(-np "$np" -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS)
# More ranks than cores is how multi-rank methods are tested on a small machine.
((np <= cores)) || launch+=(--oversubscribe)
# Open MPI binds each rank to one core when np <= 2, which would squeeze all of a rank's
# OpenMP threads onto that core.
((OMP_NUM_THREADS <= 1)) || launch+=(--bind-to none)
# Open MPI refuses to start as root unless asked; ask only when it is actually the case.
[ "$(id -u)" -ne 0 ] || launch+=(--allow-run-as-root)
# shellcheck disable=SC2206  # MPIRUN_FLAGS is meant to be split into words
launch+=(${MPIRUN_FLAGS:-})

# resume=auto: continue from the newest checkpoint in the run folder, else start fresh, so the
# same command restarts a stopped run. Overrides given here come later and win.
set -x
exec "${MPIRUN:-mpirun}" "${launch[@]}" "$bin" run "$config" --checkpoint.resume=auto "$@"
