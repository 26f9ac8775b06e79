#!/usr/bin/env bash
# The job scripts on a real Slurm (tests/slurm/cluster.sh starts a one-node cluster; without one
# this test is skipped). What a cluster user does, checked end to end:
#   1. jobs/slurm.sbatch, 2 ranks through srun (PMIx asked for by the script, since the cluster's
#      MpiDefault is none): SIGUSR1 mid-run (what --signal=USR1@90 sends before a time limit) ->
#      every rank checkpoints, the script requeues the job, the next allocation resumes, and the
#      finished trace has exactly the losses of an uninterrupted mpirun run of the same config.
#   2. jobs/submit_study.sh: a 3-entry study as a job array plus the table job; one array task is
#      stopped by SIGUSR1 and requeued; every entry ends finished, the table job prints all rows;
#      resubmitting the study keeps every finished run (its trace untouched).
#   bash test_slurm_jobs.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
set -uo pipefail
bin=$1 src=$2 scratch=$3
if ! command -v sbatch >/dev/null || ! sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed"; then
  echo "SKIP: no Slurm cluster here (start one with: bash tests/slurm/cluster.sh start)"
  exit 77
fi
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch" || exit 1
ln -s "$src/jobs" jobs && ln -s "$src/configs" configs
export FRUGAL_BIN=$bin HDF5_USE_FILE_LOCKING=FALSE
python=${FRUGAL_PYTHON:-python3}
fail() {
  echo "FAIL: $*"
  for f in frugal-*.out frugal-study-*.out frugal-table-*.out; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done
  squeue
  exit 1
}
# wait_for SECONDS COMMAND...: poll until the command succeeds.
wait_for() {
  local limit=$1
  shift
  for _ in $(seq 1 $((limit * 4))); do "$@" && return 0; sleep 0.25; done
  return 1
}
seen() { grep -q "$1" "$2" 2>/dev/null; }  # seen PATTERN FILE (the file may not exist yet)
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1; }
job_done() { case $(job_state "$1") in COMPLETED | FAILED | CANCELLED | TIMEOUT | "") return 0 ;; *) return 1 ;; esac; }
# A requeued job waits ~2 minutes before it is eligible again (Slurm's BeginTime); a test has no
# time to wait, so it releases the job as soon as it is pending again.
release_when_requeued() {
  wait_for 60 bash -c "scontrol show job $1 | grep -q 'Restarts=[1-9].*' && scontrol show job $1 | grep -q JobState=PENDING" \
    || return 1
  scontrol update JobId="$1" StartTime=now
}
common=(--run.steps=600 --run.log_every=50 --eval.every=200 --eval.batches=2 --checkpoint.every=0)

# ---- 1. one run: USR1, requeue, resume, same losses as mpirun ---------------------------------
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "${MPIEXEC:-mpirun}" -np 2 --oversubscribe \
  "$bin" run configs/quickstart/tiny.toml --run.name=reference "${common[@]}" > reference.log 2>&1 \
  || { cat reference.log; fail "the mpirun reference run failed"; }
job=$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=00:10:00 jobs/slurm.sbatch configs/quickstart/tiny.toml \
  --run.name=slurm "${common[@]}") || fail "sbatch refused jobs/slurm.sbatch"
echo "ok:   submitted jobs/slurm.sbatch as job $job"
wait_for 120 seen "step *50/600" "frugal-$job.out" || fail "job $job did not start training"
scancel --signal=USR1 "$job"
release_when_requeued "$job" || fail "job $job was not requeued after SIGUSR1"
echo "ok:   SIGUSR1 -> checkpoint -> 'scontrol requeue' ($(grep -m1 'stop signal' "frugal-$job.out"))"
wait_for 180 job_done "$job" || fail "job $job did not finish after its requeue"
[ "$(job_state "$job")" = COMPLETED ] || fail "job $job ended $(job_state "$job")"
grep -q "steps [0-9]* -> 600 (resumed)" "frugal-$job.out" || fail "the requeued job did not resume"
"$python" - runs/reference/trace.h5 runs/slurm/trace.h5 <<'PY' || fail "the Slurm run's trace differs from the mpirun run's"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    assert b.attrs["status"] == "finished", b.attrs["status"]
    for col in ("step", "tokens", "loss", "grad_norm", "lr", "comm_bytes"):
        assert np.array_equal(a["steps"][col][...], b["steps"][col][...]), col
    assert np.array_equal(a["eval/loss"][...], b["eval/loss"][...]), "eval/loss"
    print(f"ok:   requeued Slurm run == uninterrupted mpirun run: {len(b['steps/loss'])} losses bit for bit, "
          f"final eval loss {b.attrs['final_eval_loss']:.6f}")
PY

# ---- 2. a study as a job array -------------------------------------------------------------------
cat > study.toml <<TOML
[study]
name = "slurm_study"
out_dir = "$scratch/study"
[[runs]]
name = "ddp"
config = "$src/configs/quickstart/tiny.toml"
ranks = 2
seeds = [1, 2]
overrides = ["run.steps=400", "run.log_every=50", "eval.every=200"]
[[runs]]
name = "diloco"
label = "DiLoCo H=5"
config = "$src/configs/quickstart/tiny.toml"
ranks = 2
overrides = ["run.method=diloco", "diloco.inner_steps=5", "run.steps=400", "run.log_every=50", "eval.every=200"]
TOML
out=$(jobs/submit_study.sh study.toml --cpus-per-task=1 --time=00:10:00) || { echo "$out"; fail "submit_study.sh failed"; }
echo "$out" | tail -1
array=$(sed -n 's/^submitted: array job \([0-9]*\).*/\1/p' <<<"$out")
table=$(sed -n 's/.*table job \([0-9]*\).*/\1/p' <<<"$out")
if [ -z "$array" ] || [ -z "$table" ]; then fail "could not read the job ids from: $out"; fi
# Stop array task 2 (diloco) mid-run: it must requeue and resume like a single job.
wait_for 180 seen "step *50/400" "frugal-study-${array}_2.out" || fail "array task 2 did not start training"
task2=$(scontrol show job "${array}_2" | sed -n 's/^JobId=\([0-9]*\).*/\1/p' | head -n 1)
scancel --signal=USR1 "${array}_2"
release_when_requeued "$task2" || fail "array task 2 was not requeued after SIGUSR1"
echo "ok:   array task 2 stopped by SIGUSR1 and requeued"
wait_for 300 job_done "$table" || fail "the table job did not run"
table_out=$(cat "frugal-table-$table.out")
for label in ddp "DiLoCo H=5"; do grep -q "^$label " <<<"$table_out" || { echo "$table_out"; fail "the table lacks '$label'"; }; done
grep -q "== study slurm_study: 3 of 3 runs have a trace" <<<"$table_out" || { echo "$table_out"; fail "the table job did not see 3 traces"; }
grep -q "steps [0-9]* -> 400 (resumed)" "frugal-study-${array}_2.out" || fail "array task 2 did not resume"
for r in ddp-s1 ddp-s2 diloco; do
  [ "$("$bin" info "study/$r/trace.h5" status)" = finished ] || fail "study entry $r is not finished"
done
echo "ok:   study as a job array: 3 entries finished (one after a requeue), the table job printed them"
before=$(stat -c %Y study/ddp-s1/trace.h5 study/ddp-s2/trace.h5 study/diloco/trace.h5)
out=$(jobs/submit_study.sh study.toml --cpus-per-task=1 --time=00:10:00) || fail "resubmitting the study failed"
table=$(sed -n 's/.*table job \([0-9]*\).*/\1/p' <<<"$out")
wait_for 120 job_done "$table" || fail "the second table job did not run"
[ "$(stat -c %Y study/ddp-s1/trace.h5 study/ddp-s2/trace.h5 study/diloco/trace.h5)" = "$before" ] \
  || fail "resubmitting the study touched a finished trace"
grep -q "finished (.*), kept" frugal-study-*_0.out || fail "a resubmitted task did not keep its finished run"
echo "ok:   resubmitted study: every finished run kept, no trace touched"
echo "1 passed, 0 failed"
