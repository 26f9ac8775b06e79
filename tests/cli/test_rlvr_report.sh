#!/usr/bin/env bash
# RL on a language model (RLVR) through analysis/report.py and `frugal compare --table`, on tiny real
# runs: an SFT base (method sft, arithmetic), then from it GRPO (seeds 1 and 2, eval.at_start) and
# EGGROLL (eggroll_lm, seed 1 with eval.at_start, seed 2 without) on arithmetic, and GRPO on
# countdown (no eval.at_start). A checker reads every trace with h5py and recomputes:
#   report.py  - the SFT base is skipped (named in the warning and in report.md), one section per
#                task, each row's base accuracy (eval/accuracy at step 0, mean over the seeds that
#                have one; "—" for none; no column for a task without any), final eval accuracy
#                mean ± std, generated tokens, generated tokens/s, bytes/rank and wall time; the
#                stdout tables equal report.md's; three plots per task, suffixed by the task;
#                without a suffix for one task; --threshold-return refused;
#   compare    - the "start accuracy" column (eval/accuracy at step 0, mean over the seeds that
#                have one, "-" for none) and its note; a table without step-0 rows has neither.
#   bash test_rlvr_report.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
# Environment (set by tests/CMakeLists.txt): FRUGAL_PYTHON, the venv python with h5py. The runs are
# single-rank, started without a launcher (MPI singleton); compare --table runs nothing.
set -euo pipefail

ANALYSIS_MODULES="h5py, numpy, matplotlib, tomllib"
# shellcheck source=tests/cli/analysis_preamble.sh
source "$(dirname "$0")/analysis_preamble.sh"

mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
runs=$scratch/runs
# Only our own outputs are removed.
rm -rf "${runs:?}" "${scratch:?}/report" "${scratch:?}/report1" "${scratch:?}/check_rlvr.py" "${scratch:?}"/*.toml \
  "${scratch:?}"/*.txt "${scratch:?}"/*.err "${scratch:?}"/*.log

# A tiny model (1 block, 32 wide), 4 new tokens, one-digit arithmetic; block_size 24 fits countdown.
model=(--model.n_layer=1 --model.n_embd=32 --model.n_head=2 --model.block_size=24 --rlvr.max_new_tokens=4
  --eval.batches=16 --run.log_every=0 --run.out_dir="$runs")
rl=(--model.init_from="$runs/base/model.bin" --run.steps=6 --eval.every=3 --rlvr.prompts=8 --rlvr.group_size=4
  --es.population=16)
train() {  # train NAME TASK [overrides...]
  local name=$1 task=$2 log=$scratch/$1.log
  shift 2
  if ! "$bin" run "$src/configs/rlvr/$task.toml" --run.name="$name" "${model[@]}" "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "frugal run '$name' failed; its output is above and in $log"
  fi
  [ -s "$runs/$name/trace.h5" ] || fail "frugal run '$name' exited 0 but wrote no $runs/$name/trace.h5"
}
train base arithmetic --run.method=sft --run.steps=30 --task.max_digits=1
train grpo-s1 arithmetic --run.method=grpo --run.label="GRPO, LoRA" --run.seed=1 --eval.at_start=true --task.max_digits=1 "${rl[@]}"
train grpo-s2 arithmetic --run.method=grpo --run.label="GRPO, LoRA" --run.seed=2 --eval.at_start=true --task.max_digits=1 "${rl[@]}"
train egg-s1 arithmetic --run.method=eggroll_lm --run.label=EGGROLL --run.seed=1 --eval.at_start=true --task.max_digits=1 "${rl[@]}"
train egg-s2 arithmetic --run.method=eggroll_lm --run.label=EGGROLL --run.seed=2 --task.max_digits=1 "${rl[@]}"
train cd countdown --run.method=grpo --run.label="GRPO countdown" --run.seed=1 "${rl[@]}"

# report.py on the whole folder: the RLVR traces, the SFT base skipped.
rc=0
"$python" "$src/analysis/report.py" "$runs" --out "$scratch/report" >"$scratch/report.txt" 2>"$scratch/report.err" || rc=$?
cat "$scratch/report.txt"
[ "$rc" -eq 0 ] || { cat "$scratch/report.err" >&2; fail "report.py on the RLVR folder exited $rc (stderr above)"; }
grep -q "skipping 1 trace.*$runs/base/trace.h5" "$scratch/report.err" \
  || fail "report.py's warning does not name the skipped SFT trace: $(cat "$scratch/report.err")"
for task in arithmetic countdown; do
  for axis in step generated_tokens time; do
    png=$scratch/report/accuracy_vs_${axis}_$task.png
    [ -s "$png" ] || fail "$png missing or empty"
  done
done

# One task: the plots are not suffixed.
rc=0
"$python" "$src/analysis/report.py" "$runs/grpo-s1" "$runs/grpo-s2" --out "$scratch/report1" >/dev/null 2>"$scratch/report1.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$scratch/report1.err" >&2; fail "report.py on one task exited $rc"; }
for axis in step generated_tokens time; do
  [ -s "$scratch/report1/accuracy_vs_$axis.png" ] || fail "one task: $scratch/report1/accuracy_vs_$axis.png missing"
done

# RLVR has no return thresholds.
rc=0
"$python" "$src/analysis/report.py" "$runs" --out "$scratch/report1" --threshold-return 0.5 >/dev/null 2>"$scratch/thr.err" || rc=$?
[ "$rc" -eq 2 ] || fail "report.py --threshold-return on RLVR traces exited $rc, expected 2"
grep -q -- "--threshold-return does not apply to RLVR traces" "$scratch/thr.err" || fail "unexpected error: $(cat "$scratch/thr.err")"

# frugal compare --table over the same traces (it runs nothing): a study naming the run folders.
cat >"$scratch/study.toml" <<EOF
[study]
name = "rlvr-table"
out_dir = '$runs'
[[runs]]
name = "grpo"
label = "GRPO, LoRA"
config = '$src/configs/rlvr/arithmetic.toml'
seeds = [1, 2]
[[runs]]
name = "egg"
label = "EGGROLL"
config = '$src/configs/rlvr/arithmetic.toml'
seeds = [1, 2]
[[runs]]
name = "cd"
label = "GRPO countdown"
config = '$src/configs/rlvr/countdown.toml'
EOF
rc=0
"$bin" compare "$scratch/study.toml" --table >"$scratch/compare.txt" 2>"$scratch/compare.err" || rc=$?
cat "$scratch/compare.txt"
[ "$rc" -eq 0 ] || { cat "$scratch/compare.err" >&2; fail "frugal compare --table exited $rc"; }
# The SFT base alone: no step-0 evaluation, so no start column (tables as they were).
cat >"$scratch/base.toml" <<EOF
[study]
name = "rlvr-base-table"
out_dir = '$runs'
[[runs]]
name = "base"
config = '$src/configs/rlvr/arithmetic.toml'
EOF
"$bin" compare "$scratch/base.toml" --table >"$scratch/compare_base.txt" 2>&1 || fail "frugal compare --table on the base exited $?"
grep -q "sent/rank" "$scratch/compare_base.txt" || fail "no table header in $scratch/compare_base.txt"
if grep -q "start " "$scratch/compare_base.txt"; then fail "a table without step-0 evaluations has a start column"; fi

cat >"$scratch/check_rlvr.py" <<'PY'
"""Recompute report.py's RLVR report and frugal compare's start column from the traces.
    python check_rlvr.py RUNS REPORT_MD REPORT_STDOUT COMPARE_STDOUT"""
import math
import os
import re
import sys
import tomllib
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import numpy as np  # noqa: E402

runs_dir, md_path, stdout_path, compare_path = map(Path, sys.argv[1:5])
failures, checks = [], 0


def check(ok, what, printed, expected):
    global checks
    checks += 1
    if not ok:
        failures.append(f"{what}: printed {printed!r}, expected {expected!r}")


def text(v):
    v = np.asarray(v)
    v = v.reshape(()).item() if v.size == 1 else v
    return v.decode() if isinstance(v, bytes) else v


# The traces, by task and label (in the order report.py sees them: sorted paths).
traces = {}
for path in sorted(runs_dir.rglob("trace.h5")):
    with h5py.File(path, "r") as f:
        a = {k: text(v) for k, v in f.attrs.items()}
        if a.get("sample_unit") != "generated_tokens":
            continue
        t = {"label": a["label"], "method": a["method"], "ranks": int(a["world_size"]),
             "acc": np.asarray(f["eval/accuracy"][...], dtype=np.float64),
             "eval_step": np.asarray(f["eval/step"][...]),
             "final": float(a["final_eval_accuracy"]), "tokens": float(a["generated_tokens_total"]),
             "rate": float(a["generated_tokens_per_s"]), "bytes": float(a["comm_bytes_per_rank"]),
             "wall": float(a["wall_time_s"]),
             "last_tokens": float(f["steps/generated_tokens"][-1])}
    check(t["final"] == t["acc"][-1], f"{path}: final_eval_accuracy vs eval/accuracy[-1]", t["final"], t["acc"][-1])
    check(t["tokens"] == t["last_tokens"], f"{path}: generated_tokens_total vs steps/generated_tokens[-1]",
          t["tokens"], t["last_tokens"])
    task = tomllib.loads(a["config"])["task"]["name"]
    traces.setdefault(task, {}).setdefault(t["label"], []).append(t)


def human(x, units):
    for unit in units[:-1]:
        if abs(x) < 1000:
            return f"{x:.3g} {unit}".rstrip()
        x /= 1000
    return f"{x:.3g} {units[-1]}"


def fmt_count(x):
    return human(x, ["", "k", "M", "G", "T"]).replace(" ", "")


def fmt_bytes(x):
    return human(x, ["B", "kB", "MB", "GB", "TB", "PB"])


def fmt_seconds(x):
    if x == 0:
        return "0 s"
    if x < 1e-3:
        return f"{x * 1e6:.3g} us"
    if x < 1:
        return f"{x * 1e3:.3g} ms"
    if x < 120:
        return f"{x:.3g} s"
    return f"{x / 60:.3g} min" if x < 7200 else f"{x / 3600:.3g} h"


def fmt_acc(x):
    return f"{x:.4f}"


def mean_std(values, fmt):
    """'mean ± std' over the seeds (sample std), the std left out for one seed or agreeing seeds."""
    v = np.asarray(values, dtype=np.float64)
    m = v.mean()
    s = v.std(ddof=1) if len(v) > 1 else math.nan
    return fmt(m) if not math.isfinite(s) or s <= 1e-9 * max(abs(m), 1e-30) else f"{fmt(m)} ± {fmt(s)}"


def start_values(members):
    """eval/accuracy at step 0 of each trace that has such a row."""
    out = []
    for t in members:
        at = np.flatnonzero(t["eval_step"] == 0)
        if len(at):
            out.append(float(t["acc"][at[0]]))
    return out


# ---- report.md: one section per task, with the skipped SFT trace named at the top
md = md_path.read_text()
check(re.search(r"^Not reported: 1 trace\(s\) .*`[^`]*/base/trace\.h5`", md, re.M) is not None,
      "report.md: the skipped SFT trace", md.splitlines()[2] if len(md.splitlines()) > 2 else md, "Not reported: ... base")
sections = {}
for block in re.split(r"^## ", md, flags=re.M)[1:]:
    name, _, body = block.partition("\n")
    lines = [ln for ln in body.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip()[1:-1].split(" | ")]
    rows = [dict(zip(header, [c.strip() for c in ln.strip()[1:-1].split(" | ")])) for ln in lines[2:]]
    sections[name.strip()] = (header, rows)
check(sorted(sections) == sorted(traces), "report.md: task sections", sorted(sections), sorted(traces))

# ---- the stdout tables equal report.md's (± written +-)
out_sections = {}
for block in re.split(r"^== ", stdout_path.read_text(), flags=re.M)[1:]:
    name, _, body = block.partition(" ==\n")
    lines = body.splitlines()
    table = lines[:lines.index("")] if "" in lines else lines
    out_sections[name] = [re.split(r"\s{2,}", ln.strip()) for ln in table[:1] + table[2:]]

for task, labels in traces.items():
    header, rows = sections.get(task, ([], []))
    by_label = {r["label"]: r for r in rows}
    check(list(by_label) == list(labels), f"report.md {task}: labels", list(by_label), list(labels))
    any_start = any(start_values(m) for m in labels.values())
    check(("base accuracy" in header) == any_start, f"report.md {task}: has a 'base accuracy' column",
          "base accuracy" in header, any_start)
    for label, members in labels.items():
        row = by_label.get(label, {})
        where = f"report.md {task} '{label}'"
        check(row.get("method") == members[0]["method"], f"{where}: method", row.get("method"), members[0]["method"])
        check(row.get("seeds") == str(len(members)), f"{where}: seeds", row.get("seeds"), len(members))
        if any_start:
            starts = start_values(members)
            want = mean_std(starts, fmt_acc) if starts else "—"
            check(row.get("base accuracy") == want, f"{where}: base accuracy (eval/accuracy at step 0: {starts})",
                  row.get("base accuracy"), want)
        for col, key, fmt in (("final eval accuracy", "final", fmt_acc), ("generated tokens", "tokens", fmt_count),
                              ("generated tokens/s", "rate", fmt_count), ("bytes/rank", "bytes", fmt_bytes),
                              ("wall time", "wall", fmt_seconds)):
            want = mean_std([t[key] for t in members], fmt)
            check(row.get(col) == want, f"{where}: {col}", row.get(col), want)
    want_out = [header] + [[c.replace(" ± ", " +- ") for c in (r[h] for h in header)] for r in rows]
    check(out_sections.get(task) == want_out, f"stdout table of {task} vs report.md", out_sections.get(task), want_out)

# ---- frugal compare: the start column
NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan"
lines = compare_path.read_text().splitlines()
heads = [i for i, ln in enumerate(lines) if ln.startswith("run ") and "sent/rank" in ln]
check(len(heads) == 1, "compare: table header", len(heads), 1)
head = lines[heads[0]] if heads else ""
check(re.search(r"seeds\s+start accuracy\s+eval accuracy\s", head) is not None, "compare: header", head,
      "... seeds  start accuracy  eval accuracy ...")
row_re = re.compile(rf"^(?P<label>.*?)\s+(?P<method>\S+)\s+(?P<ranks>\d+)\s+(?P<seeds>\d+)\s+(?P<start>{NUM}|-)"
                    rf"\s+(?P<em>{NUM}) \+- (?P<es>{NUM})\s")
printed = {}
for ln in lines[heads[0] + 1:] if heads else []:
    if ln.startswith("("):
        break
    m = row_re.match(ln)
    check(m is not None, "compare: row layout", ln, "label method ranks seeds start eval ...")
    if m:
        printed[m["label"]] = m
every = {label: members for labels in traces.values() for label, members in labels.items()}
check(sorted(printed) == sorted(every), "compare: labels", sorted(printed), sorted(every))
for label, members in every.items():
    m = printed.get(label)
    if not m:
        continue
    starts = start_values(members)
    want = "%.5g" % float(np.mean(starts)) if starts else "-"
    check(m["start"] == want, f"compare '{label}': start accuracy (eval/accuracy at step 0: {starts})", m["start"], want)
    want = "%.5g" % float(np.mean([t["final"] for t in members]))
    check(m["em"] == want, f"compare '{label}': eval accuracy", m["em"], want)
check(any(ln.startswith("(start accuracy: eval/accuracy at step 0") for ln in lines), "compare: start note",
      "missing", "(start accuracy: eval/accuracy at step 0 ...")

for f in failures:
    print(f"FAIL: {f}")
print(f"{'ok:  ' if not failures else 'FAIL:'} {checks - len(failures)} of {checks} checks")
sys.exit(1 if failures else 0)
PY
"$python" "$scratch/check_rlvr.py" "$runs" "$scratch/report/report.md" "$scratch/report.txt" "$scratch/compare.txt" \
  || fail "report.py's or frugal compare's RLVR tables differ from the traces (lines above; the checker is $scratch/check_rlvr.py)"

echo "PASS: report.py on RLVR traces (SFT base skipped; per task: base accuracy = eval/accuracy at step 0," \
  "final eval accuracy, generated tokens, rates, bytes, wall time; 3 plots per task) and frugal compare's" \
  "start accuracy column match the traces"
