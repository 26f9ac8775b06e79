#!/usr/bin/env bash
# End to end: two real tiny runs under one label (seeds 1 and 2), then analysis/report.py on them.
#   bash test_analysis_report.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
# Environment (set by tests/CMakeLists.txt): FRUGAL_PYTHON, the venv python with h5py; MPIEXEC.
# The runs are single-rank, started without a launcher (MPI singleton), so MPIEXEC is not needed.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 FRUGAL_BIN SOURCE_DIR SCRATCH_DIR" >&2
  exit 2
fi
bin=$1
src=$2
scratch=$3
python=${FRUGAL_PYTHON:-$src/.venv/bin/python}
config=$src/configs/quickstart/tiny.toml

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Without the analysis packages there is nothing to test here (./setup.sh installs them).
if ! "$python" -c "import h5py, numpy, matplotlib" >/dev/null 2>&1; then
  echo "SKIP: '$python' cannot import h5py, numpy and matplotlib (run ./setup.sh)"
  exit 77  # ctest: skipped
fi
[ -x "$bin" ] || fail "frugal binary missing or not executable: $bin"
[ -f "$config" ] || fail "config missing: $config"

# Only our own outputs are removed: report.py scans the whole scratch folder.
mkdir -p "$scratch"
rm -rf "${scratch:?}/a" "${scratch:?}/b" "${scratch:?}/report" "${scratch:?}/empty"

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
for png in loss_vs_tokens loss_vs_bytes loss_vs_time; do
  [ -s "$out/$png.png" ] || fail "$out/$png.png missing or empty"
done

# Errors are reported with status 2 and name the folder.
mkdir -p "$scratch/empty"
rc=0
"$python" "$src/analysis/report.py" "$scratch/empty" >/dev/null 2>"$scratch/empty.err" || rc=$?
[ "$rc" -eq 2 ] || fail "report.py on a folder without traces exited $rc, expected 2"
grep -q "$scratch/empty" "$scratch/empty.err" || fail "report.py's error does not name the empty folder"

echo "PASS: report.py aggregated 2 seeds of label 'x' and wrote report.md and 3 plots"
