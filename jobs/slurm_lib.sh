# shellcheck shell=bash
# Shared by jobs/slurm.sbatch and jobs/study.sbatch (sourced from the submit folder: Slurm runs a
# spooled copy of the batch script, so helpers are found through $SLURM_SUBMIT_DIR).

# Threads: one OpenMP/BLAS thread per CPU Slurm gave the task. Since Slurm 22.05 srun no longer
# inherits --cpus-per-task from the batch job, hence SRUN_CPUS_PER_TASK.
frugal_slurm_threads() {
  export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
  export OPENBLAS_NUM_THREADS=$OMP_NUM_THREADS
  export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}
}

# The PMI that srun uses to wire up Open MPI ranks. Open MPI 4 (Debian, most clusters) talks PMIx;
# a cluster whose default MpiDefault is "none" kills the ranks with "OMPI was not built with
# SLURM's PMI support" unless srun is told. FRUGAL_SRUN_MPI overrides (e.g. pmi2, or "" for the
# cluster default).
frugal_srun_mpi() {
  local want=${FRUGAL_SRUN_MPI-pmix}
  [ -n "$want" ] || return 0
  if ! srun --mpi=list 2>&1 | grep -qw "${want%%_*}"; then
    echo "== srun has no '$want' MPI plugin (srun --mpi=list); set FRUGAL_SRUN_MPI to one it lists" >&2
    return 2
  fi
  echo "--mpi=$want"
}

# The status attribute of a trace (running, finished, stopped, failed), or nothing.
frugal_trace_status() {
  local bin=$1 trace=$2
  [ -f "$trace" ] || return 0
  "$bin" info "$trace" status 2>/dev/null || true
}

# After srun: a run stopped by the time-limit signal (status "stopped") goes back to the queue with
# the same job id; its next allocation resumes from the checkpoint it just wrote.
frugal_requeue_if_stopped() {
  local rc=$1 status=$2
  [ "$rc" -eq 0 ] && [ "$status" = stopped ] || return 0
  if [ "${SLURM_RESTART_COUNT:-0}" -ge "${MAX_REQUEUES:-50}" ]; then
    echo "== not requeueing: already restarted ${SLURM_RESTART_COUNT} times (MAX_REQUEUES)" >&2
    return 1
  fi
  echo "== requeueing job $SLURM_JOB_ID; the next allocation resumes from the last checkpoint"
  scontrol requeue "$SLURM_JOB_ID"
}
