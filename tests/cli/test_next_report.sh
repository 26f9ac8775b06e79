#!/usr/bin/env bash
# analysis/next_report.py (the NExt study's report) on a tiny real chain run by `frugal compare`,
# shaped like configs/next/study.toml but on a 1-block, 32-wide model and one seed: plain GRPO-LoRA
# for 12 steps (trajectory every 2 steps and evaluation every 3, from step 0), the four extrapolators
# fitted to its checkpoints up to step 6 (NExt with k = 1, 20 epochs, a 16-wide predictor and a sweep of
# alpha 0.5 and 1; NExt without sign alignment; AlphaRL, RL-Extra and RELEX to step 9), and GRPO-LoRA
# for 3 steps from each aligned extrapolation (rlvr.first_step = 6: 6 + 3 = 9 real steps).
# GRPO from a random model earns no reward at all (nothing would change, and the extrapolators
# refuse an unchanged trajectory), so the plain run starts from a 200-step SFT model made first in
# SCRATCH/base, outside the study's folder, as configs/rlvr/bases.toml makes the study's. AlphaRL
# regresses accuracy on the checkpoints after W_0 and refuses when their accuracies are all equal;
# with only steps 3 and 6 (32 problems each) that happened on one CPU and not on another (BLAS
# rounding moves a greedy answer or two), hence three checkpoints after W_0, 64 problems each.
# Checks:
#   - the printed tables name every method, the alpha sweep (W_K as alpha 0, the swept alphas) and
#     the sign-alignment ablation; the one-seed caveat is printed; report.md has the same sections,
#     the plot and the claims; the plot file exists;
#   - the numbers of the main table (one seed: printed without a std) equal the traces': final
#     accuracy (last eval/accuracy of plain and continuations), plain at the 9-step budget, accuracy
#     after extrapolation and W_K (the extrapolation's eval/ steps 1 and 0), real RL steps;
#   - an unfinished continuation (status set to running in a copy) and an SFT trace beside the study
#     are skipped with a warning, not a crash; an empty folder and a trace that is not HDF5 fail
#     (exit 2) with a message naming what is wrong.
#   bash test_next_report.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
# Environment (set by tests/CMakeLists.txt): FRUGAL_PYTHON, the venv python with h5py; MPIEXEC.
set -euo pipefail

ANALYSIS_MODULES="h5py, numpy, matplotlib, tomllib"
# shellcheck source=tests/cli/analysis_preamble.sh
source "$(dirname "$0")/analysis_preamble.sh"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
# frugal compare starts its runs with `mpirun` from PATH; MPIEXEC may name one that is not on it.
if [[ "${MPIEXEC:-}" == */* ]]; then PATH=$(dirname "$MPIEXEC"):$PATH; fi
command -v mpirun >/dev/null || fail "mpirun not found on PATH (MPIEXEC='${MPIEXEC:-}'); frugal compare needs it"

mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
runs=$scratch/runs
# Only our own outputs are removed.
rm -rf "${runs:?}" "${scratch:?}/base" "${scratch:?}/partial" "${scratch:?}/report" "${scratch:?}/report2" \
  "${scratch:?}/empty" "${scratch:?}/bad" "${scratch:?}/check_next.py" "${scratch:?}"/*.toml "${scratch:?}"/*.txt \
  "${scratch:?}"/*.err "${scratch:?}"/*.log

# The tiny model and task every run of the chain shares (the extrapolators check the shapes).
shape='"model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.block_size=24", "rlvr.max_new_tokens=4",
  "task.max_digits=1", "eval.batches=64", "rlvr.prompts=8", "rlvr.group_size=4", "run.log_every=0"'
shape_args=(--model.n_layer=1 --model.n_embd=32 --model.n_head=2 --model.block_size=24 --rlvr.max_new_tokens=4
  --task.max_digits=1 --eval.batches=64 --run.log_every=0)

# The SFT base, outside the study's folder.
if ! "$bin" run "$src/configs/rlvr/arithmetic.toml" --run.name=sft --run.out_dir="$scratch/base" --run.method=sft \
  --run.steps=200 "${shape_args[@]}" >"$scratch/sft.log" 2>&1; then
  cat "$scratch/sft.log" >&2
  fail "the SFT base run failed; its output is above and in $scratch/sft.log"
fi
[ -s "$scratch/base/sft/model.bin" ] || fail "the SFT run wrote no $scratch/base/sft/model.bin"

config=$src/configs/rlvr/arithmetic.toml
extrapolate='"run.method=extrapolate", "extrapolate.trajectory={out_dir}/arithmetic-grpo-s{seed}/trajectory.h5",
  "extrapolate.observed_step=6", "run.steps=1", "eval.at_start=true"'
next='"extrapolate.method=next", "next.k=1", "next.epochs=20", "next.hidden=16"'
cont() {  # the continuation entry of extrapolation $1
  cat <<EOF
[[runs]]
name = "arithmetic-$1-grpo"
label = "arithmetic $1 + GRPO-LoRA 3"
config = '$config'
seeds = [1]
overrides = [$shape, "run.method=grpo", "model.init_from={out_dir}/arithmetic-$1-s{seed}/model.bin",
  "rlvr.first_step=6", "run.steps=3", "eval.every=3", "eval.at_start=true"]
EOF
}
{
  cat <<EOF
[study]
name = "next-tiny"
out_dir = '$runs'

[[runs]]
name = "arithmetic-grpo"
label = "arithmetic GRPO-LoRA 12 steps"
config = '$config'
seeds = [1]
overrides = [$shape, "run.method=grpo", "model.init_from=$scratch/base/sft/model.bin", "run.steps=12",
  "grpo.trajectory_every=2", "eval.every=3", "eval.at_start=true"]

[[runs]]
name = "arithmetic-next"
label = "arithmetic NExt"
config = '$config'
seeds = [1]
overrides = [$shape, $extrapolate, $next, "next.alpha_sweep=0.5,1"]

[[runs]]
name = "arithmetic-next-unaligned"
label = "arithmetic NExt, signs not aligned"
config = '$config'
seeds = [1]
overrides = [$shape, $extrapolate, $next, "next.align_signs=false"]
EOF
  for m in alpharl rl_extra relex; do
    cat <<EOF

[[runs]]
name = "arithmetic-${m/_/-}"
label = "arithmetic $m to step 9"
config = '$config'
seeds = [1]
overrides = [$shape, $extrapolate, "extrapolate.method=$m", "extrapolate.target_step=9"]
EOF
  done
  for m in next alpharl rl-extra relex; do
    echo
    cont "$m"
  done
} >"$scratch/study.toml"

rc=0
"$bin" compare "$scratch/study.toml" >"$scratch/compare.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
  tail -n 40 "$scratch/compare.log" >&2
  fail "frugal compare on the tiny NExt study exited $rc (last lines above; all in $scratch/compare.log)"
fi

# The report.
rc=0
"$python" "$src/analysis/next_report.py" "$runs" --out "$scratch/report" >"$scratch/report.txt" 2>"$scratch/report.err" || rc=$?
cat "$scratch/report.txt"
[ "$rc" -eq 0 ] || { cat "$scratch/report.err" >&2; fail "next_report.py on the tiny study exited $rc (stderr above)"; }
for f in report.md accuracy_vs_rl_steps_arithmetic.png; do
  [ -s "$scratch/report/$f" ] || fail "next_report.py wrote no $scratch/report/$f"
done
for text in "== arithmetic ==" "GRPO-LoRA (12 steps)" "GRPO-LoRA at 9 steps" NExt AlphaRL RL-Extra RELEX \
  "NExt alpha sweep" "0 (W_K)" "signs not aligned" "Which claim the numbers support" "CAVEAT: 1 plain seed"; do
  grep -qF -- "$text" "$scratch/report.txt" || fail "the printed report does not contain '$text' (it is in $scratch/report.txt)"
done
for text in "## arithmetic" "GRPO-LoRA (12 steps)" "GRPO-LoRA at 9 steps" "| NExt |" "| AlphaRL |" "| RL-Extra |" \
  "| RELEX |" "### NExt alpha sweep" "| 0.5 |" "| signs not aligned |" "![arithmetic" \
  "(accuracy_vs_rl_steps_arithmetic.png)" "### Which claim the numbers support" "**Caveat:"; do
  grep -qF -- "$text" "$scratch/report/report.md" || fail "report.md does not contain '$text'"
done

# The main table's numbers against the traces (one seed: each cell is the seed's value).
cat >"$scratch/check_next.py" <<'PY'
"""The main table of next_report.py's report.md against the traces.
    python check_next.py RUNS REPORT_MD"""
import os
import sys
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402

runs, md = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
lines = [ln for ln in md.split("### Main table", 1)[1].split("###", 1)[0].splitlines() if ln.startswith("| ")]
header = [c.strip() for c in lines[0].strip()[1:-1].split(" | ")]
table = {r[0]: dict(zip(header, r)) for r in ([c.strip() for c in ln.strip()[1:-1].split(" | ")] for ln in lines[2:])}


def evals(name):
    with h5py.File(runs / name / "trace.h5", "r") as f:
        return dict(zip(f["eval/step"][...].tolist(), f["eval/accuracy"][...].tolist()))


failures = []


def check(row, column, want):
    got = table.get(row, {}).get(column)
    if got != want:
        failures.append(f"{row} / {column}: report.md has {got!r}, the traces give {want!r}")


plain = evals("arithmetic-grpo-s1")
check("GRPO-LoRA (12 steps)", "final accuracy", f"{plain[12]:.4f}")
check("GRPO-LoRA (12 steps)", "real RL steps", "12")
check("GRPO-LoRA at 9 steps", "final accuracy", f"{plain[9]:.4f}")
for name, run in (("NExt", "next"), ("AlphaRL", "alpharl"), ("RL-Extra", "rl-extra"), ("RELEX", "relex")):
    ext, cont = evals(f"arithmetic-{run}-s1"), evals(f"arithmetic-{run}-grpo-s1")
    check(name, "final accuracy", f"{cont[max(cont)]:.4f}")
    check(name, "after extrapolation", f"{ext[1]:.4f}")
    check(name, "W_K", f"{ext[0]:.4f}")
    check(name, "real RL steps", "9")
    check(name, "seeds", "1")
for f in failures:
    print(f"FAIL: {f}")
print(f"{'ok:  ' if not failures else 'FAIL:'} {len(failures)} difference(s) in the main table")
sys.exit(1 if failures else 0)
PY
"$python" "$scratch/check_next.py" "$runs" "$scratch/report/report.md" \
  || fail "next_report.py's main table differs from the traces (lines above; the checker is $scratch/check_next.py)"

# Missing pieces: an unfinished continuation (in a copy) and the SFT base beside the study are
# skipped with warnings; the rest is still reported.
cp -r "$runs" "$scratch/partial"
"$python" - "$scratch/partial/arithmetic-relex-grpo-s1/trace.h5" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["status"] = "running"
PY
rc=0
"$python" "$src/analysis/next_report.py" "$scratch/partial" "$scratch/base" --out "$scratch/report2" \
  >"$scratch/report2.txt" 2>"$scratch/report2.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$scratch/report2.err" >&2; fail "next_report.py with an unfinished continuation exited $rc"; }
grep -q "arithmetic-relex-grpo-s1/trace.h5: continuation trace with status 'running', skipped" "$scratch/report2.err" \
  || fail "no warning naming the unfinished continuation: $(cat "$scratch/report2.err")"
grep -q "RELEX: seed(s) 1 have no finished continuation" "$scratch/report2.err" \
  || fail "no warning that RELEX lost its continuation: $(cat "$scratch/report2.err")"
grep -q "base/sft/trace.h5: a supervised warm start (method sft)" "$scratch/report2.err" \
  || fail "no warning naming the skipped SFT trace: $(cat "$scratch/report2.err")"
grep -qF "| RELEX | 0 (1 extrap.) | n/a |" "$scratch/report2/report.md" \
  || fail "report.md's RELEX row without its continuation is not '| RELEX | 0 (1 extrap.) | n/a | ...'"

# Nothing to report, or a broken trace: exit 2 with a clear message.
mkdir -p "$scratch/empty"
rc=0
"$python" "$src/analysis/next_report.py" "$scratch/empty" >/dev/null 2>"$scratch/empty.err" || rc=$?
[ "$rc" -eq 2 ] || fail "next_report.py on an empty folder exited $rc, expected 2"
grep -q "error: no trace.h5 found under $scratch/empty" "$scratch/empty.err" || fail "unexpected error: $(cat "$scratch/empty.err")"
mkdir -p "$scratch/bad/broken"
echo "not an HDF5 file" >"$scratch/bad/broken/trace.h5"
rc=0
"$python" "$src/analysis/next_report.py" "$scratch/bad" >/dev/null 2>"$scratch/bad.err" || rc=$?
[ "$rc" -eq 2 ] || fail "next_report.py on a trace that is not HDF5 exited $rc, expected 2"
grep -q "error: .*/bad/broken/trace.h5: cannot open as HDF5" "$scratch/bad.err" || fail "unexpected error: $(cat "$scratch/bad.err")"

echo "PASS: next_report.py on a tiny NExt chain (plain GRPO-LoRA, NExt with sweep and unaligned, AlphaRL," \
  "RL-Extra, RELEX, continuations): tables, plot, report.md and claims; main table equal to the traces;" \
  "unfinished and SFT traces skipped; empty folder and broken trace refused"
