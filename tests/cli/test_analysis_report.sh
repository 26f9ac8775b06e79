#!/usr/bin/env bash
# End to end: two real tiny runs under one label (seeds 1 and 2), then analysis/report.py on them;
# then the same for two tiny RL runs (eggroll on CartPole-v1).
#   bash test_analysis_report.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
# Environment (set by tests/CMakeLists.txt): FRUGAL_PYTHON, the venv python with h5py; MPIEXEC.
# The runs are single-rank, started without a launcher (MPI singleton), so MPIEXEC is not needed.
set -euo pipefail

# shellcheck source=tests/cli/analysis_preamble.sh
source "$(dirname "$0")/analysis_preamble.sh"

# Only our own outputs are removed: report.py scans the whole scratch folder.
mkdir -p "$scratch"
# rl/ must be gone before the first report: that one reads the whole scratch folder, and a report
# of language-model and RL traces together is refused.
rm -rf "${scratch:?}/a" "${scratch:?}/b" "${scratch:?}/report" "${scratch:?}/empty" "${scratch:?}/rl"

train() {  # train NAME SEED
  local name=$1 seed=$2 log=$scratch/$1.log
  if ! "$bin" run "$config" --run.name="$name" --run.label=x --run.seed="$seed" \
      --run.out_dir="$scratch" --run.overwrite=true >"$log" 2>&1; then
    cat "$log" >&2
    fail "frugal run '$name' (seed $seed) failed; its output is above and in $log"
  fi
  [ -s "$scratch/$name/trace.h5" ] || fail "frugal run '$name' exited 0 but wrote no $scratch/$name/trace.h5"
}
train a 1
train b 2

out=$scratch/report
rc=0
"$python" "$src/analysis/report.py" "$scratch" --out "$out" >"$scratch/table.txt" 2>"$scratch/report.err" || rc=$?
cat "$scratch/table.txt"
if [ "$rc" -ne 0 ]; then
  cat "$scratch/report.err" >&2
  fail "report.py exited with status $rc (stderr above)"
fi

# Table columns: label method ranks seeds ...; the two seeds must be one row with n = 2.
grep -Eq '^x[[:space:]]' "$scratch/table.txt" || fail "no row for label 'x' in the report table"
seeds=$(awk '$1 == "x" { print $4 }' "$scratch/table.txt")
[ "$seeds" = "2" ] || fail "label 'x' should aggregate 2 seeds, the table says '$seeds'"
grep -q '^| x |' "$out/report.md" || fail "no row for label 'x' in $out/report.md"
for png in loss_vs_tokens loss_vs_bytes loss_vs_time loss_vs_flops; do
  [ -s "$out/$png.png" ] || fail "$out/$png.png missing or empty"
done

# Errors are reported with status 2 and name the folder.
mkdir -p "$scratch/empty"
rc=0
"$python" "$src/analysis/report.py" "$scratch/empty" >/dev/null 2>"$scratch/empty.err" || rc=$?
[ "$rc" -eq 2 ] || fail "report.py on a folder without traces exited $rc, expected 2"
grep -q "$scratch/empty" "$scratch/empty.err" || fail "report.py's error does not name the empty folder"

# RL: two tiny eggroll runs (default env CartPole-v1) under label 'rl', in a folder of their own.
rl=$scratch/rl
train_rl() {  # train_rl NAME SEED
  local name=$1 seed=$2 log=$scratch/$1.log
  if ! "$bin" run "" --run.method=eggroll --run.steps=5 --es.population=8 --eval.batches=2 \
      --run.name="$name" --run.label=rl --run.seed="$seed" --run.out_dir="$rl" --run.overwrite=true \
      >"$log" 2>&1; then
    cat "$log" >&2
    fail "frugal run '$name' (eggroll, seed $seed) failed; its output is above and in $log"
  fi
  [ -s "$rl/$name/trace.h5" ] || fail "frugal run '$name' exited 0 but wrote no $rl/$name/trace.h5"
}
train_rl rl1 1
train_rl rl2 2

rl_report() {  # rl_report OUT [report.py options...]: the table goes to OUT.txt
  local out=$1 rc=0
  shift
  "$python" "$src/analysis/report.py" "$rl" --out "$out" "$@" >"$out.txt" 2>"$out.err" || rc=$?
  cat "$out.txt"
  if [ "$rc" -ne 0 ]; then
    cat "$out.err" >&2
    fail "report.py on the RL runs exited with status $rc (stderr above)"
  fi
}
rl_report "$rl/report"
seeds=$(awk '$1 == "rl" { print $4 }' "$rl/report.txt")
[ "$seeds" = "2" ] || fail "label 'rl' should aggregate 2 seeds, the table says '$seeds'"
# CartPole-v1's default threshold; 5 steps are far from it, which the table must say, not hide.
grep -q 'reached 475' "$rl/report.txt" || fail "the RL table has no 'reached 475' column"
grep -q '^## CartPole-v1' "$rl/report/report.md" || fail "no CartPole-v1 section in $rl/report/report.md"
grep -q '^| rl |' "$rl/report/report.md" || fail "no row for label 'rl' in $rl/report/report.md"
for png in return_vs_env_steps return_vs_time; do
  [ -s "$rl/report/$png.png" ] || fail "$rl/report/$png.png missing or empty"
done
# Every CartPole episode returns at least 1, so both seeds reach a threshold of 0.
rl_report "$rl/report0" --threshold-return 0
awk '$1 == "rl"' "$rl/report0.txt" | grep -q ' 2/2 ' || fail "with --threshold-return 0, label 'rl' should show 2/2 seeds reaching it"

# Language-model and RL traces in one report: refused with status 2.
rc=0
"$python" "$src/analysis/report.py" "$scratch" --out "$scratch/mixed" >/dev/null 2>"$scratch/mixed.err" || rc=$?
[ "$rc" -eq 2 ] || fail "report.py on language-model and RL traces together exited $rc, expected 2"
grep -q "language-model and RL" "$scratch/mixed.err" || fail "report.py's error does not say it mixes language-model and RL traces"

echo "PASS: report.py aggregated 2 seeds of label 'x' and wrote report.md and 4 plots;" \
  "2 seeds of RL label 'rl' with report.md and 2 plots; refused to mix the two"
