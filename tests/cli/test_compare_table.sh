#!/usr/bin/env bash
# The numbers users quote from `frugal compare` and analysis/report.py, pinned against the traces:
# a tiny study (DDP and EST with seeds 1 and 2, DiLoCo and SparseLoCo with H=5, all on 2 ranks)
# runs through `frugal compare`; then a checker reads every trace with h5py and numpy, recomputes
# each row (label, method, ranks, seeds, eval loss mean +- std, tokens/s, sent/rank, comm@<network>,
# FLOPs, train time, wall) and the "EST vs dense" line, and compares them with what was printed, to
# the printed precision (3 significant digits with an SI prefix; the last digit may be off by one,
# as a mean taken in another order can round the other way). It also checks the traces against
# themselves (final_eval_loss = last eval/loss, tokens_total = steps x batch x seq_len,
# comm_bytes_per_rank = mean of ranks/bytes_sent, ranks/bytes_sent[0] = sum of steps/comm_bytes,
# net_time_s_<network> = sum of steps/net_time_<network>, flops_total = sum of steps/flops), and
# report.py's report.md (eval loss, bytes/rank, compression against its baseline row, the other
# summary columns, and the EST vs dense table's savings) against the same recomputed values.
#   bash test_compare_table.sh FRUGAL_BIN SOURCE_DIR SCRATCH_DIR
# Environment (set by tests/CMakeLists.txt): FRUGAL_PYTHON, the venv python with h5py; MPIEXEC.
# The checker is written to SCRATCH_DIR/check_tables.py and can be rerun on its own:
#   python check_tables.py STUDY.toml COMPARE_STDOUT REPORT_MD [--runs FOLDER_OF_TRACES]
set -euo pipefail

ANALYSIS_MODULES="h5py, numpy, matplotlib, tomllib"
# shellcheck source=tests/cli/analysis_preamble.sh
source "$(dirname "$0")/analysis_preamble.sh"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
# frugal compare starts its runs with `mpirun` from PATH; MPIEXEC may name one that is not on it.
if [[ "${MPIEXEC:-}" == */* ]]; then PATH=$(dirname "$MPIEXEC"):$PATH; fi
command -v mpirun >/dev/null || fail "mpirun not found on PATH (MPIEXEC='${MPIEXEC:-}'); frugal compare needs it"

# Only our own outputs are removed.
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
out_dir=$scratch/runs
rm -rf "${scratch:?}/runs" "${scratch:?}/report" "${scratch:?}/study.toml" "${scratch:?}/compare.out" \
  "${scratch:?}/compare.err" "${scratch:?}/report.out" "${scratch:?}/report.err" "${scratch:?}/check_tables.py"

# On any failure, show where the numbers came from.
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for log in "$scratch/compare.out" "$scratch/compare.err" "$scratch/report.err"; do
      if [ -s "$log" ]; then
        echo "--- last lines of $log" >&2
        tail -n 25 "$log" >&2
      fi
    done
  fi
}
trap on_exit EXIT

# The study: the same model, data and steps (tiny.toml: 30 steps) per row, so that EST's
# dense-equivalent FLOPs equal the DDP row's (which is how both tables pair them). DiLoCo trains
# the same FLOPs too; the pairing must still pick DDP, which synchronises as often as EST.
# Labels with spaces and commas, like the quickstart study's.
cat > "$scratch/study.toml" <<EOF
[study]
name = "compare-table"
out_dir = '$out_dir'

[[runs]]
name = "dense"
label = "DDP, 2 ranks"
config = '$config'
ranks = 2
seeds = [1, 2]

[[runs]]
name = "est"
label = "EST, 2 ranks"
config = '$config'
ranks = 2
seeds = [1, 2]
overrides = ["run.method=est"]

[[runs]]
name = "diloco"
label = "DiLoCo, 2 workers, H=5"
config = '$config'
ranks = 2
overrides = ["run.method=diloco", "diloco.inner_steps=5"]

[[runs]]
name = "sparseloco"
label = "SparseLoCo, 2 workers, H=5"
config = '$config'
ranks = 2
overrides = ["run.method=sparseloco", "sparseloco.inner_steps=5"]
EOF

# The checker: everything it expects comes from the study file and the traces.
cat > "$scratch/check_tables.py" <<'PY'
"""Recompute frugal compare's table and report.py's report.md from the traces (h5py, numpy).
    python check_tables.py STUDY.toml COMPARE_STDOUT REPORT_MD [--runs FOLDER_OF_TRACES]
Exit 0 if every printed number matches, 1 with one line per mismatch otherwise."""
import argparse
import math
import os
import re
import sys
import tomllib
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import numpy as np  # noqa: E402

NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf"
TIME = rf"(?:{NUM}) (?:us|ms|s)"
checks = 0
failures = []


def check(ok, where, label, column, printed, recomputed):
    global checks
    checks += 1
    if not ok:
        shown = "holds" if where.startswith("trace") else "printed"  # a trace checked against itself
        failures.append(f"{where}: '{label}', {column}: {shown} '{printed}', recomputed {recomputed}")
    return ok


def split_number(text):
    """'5.15 MB' -> (5.15, 'MB'); '16k' -> (16.0, 'k'); '23.8%' -> (23.8, '%')."""
    m = re.fullmatch(rf"\s*({NUM})\s*(\S*)\s*", text)
    return (float(m.group(1)), m.group(2)) if m else (None, None)


def agree(printed, expected, sig=None, decimals=None):
    """The printed text is the expected text, or the same unit with the number one in the last
    printed digit away (sig significant digits, or decimals after the point)."""
    if printed.strip() == expected.strip():
        return True
    p, pu = split_number(printed)
    e, eu = split_number(expected)
    if p is None or e is None or pu != eu or not (math.isfinite(p) and math.isfinite(e)):
        return False
    if decimals is not None:
        ulp = 10.0 ** -decimals
    else:
        ulp = 10.0 ** (math.floor(math.log10(abs(e))) - (sig - 1)) if e != 0 else 10.0 ** -(sig - 1)
    return abs(p - e) <= ulp * 1.0001


# The formats, as src/core/units.hpp and src/cli/compare.cpp (frugal compare) write them ...
def c_si(value, unit):
    prefixes = ["", "k", "M", "G", "T", "P"]
    u = 0
    while abs(value) >= 1000 and u < 5:
        value /= 1000
        u += 1
    return "%.3g %s%s" % (value, prefixes[u], unit)


def c_seconds(s):
    if s < 1e-3:
        return "%.3g us" % (s * 1e6)
    if s < 1:
        return "%.3g ms" % (s * 1e3)
    return "%.3g s" % s


# ... and as analysis/report.py writes them into report.md.
def py_human(x, units):
    for unit in units[:-1]:
        if abs(x) < 1000:
            return f"{x:.3g} {unit}".rstrip()
        x /= 1000
    return f"{x:.3g} {units[-1]}"


def py_bytes(x):
    return py_human(x, ["B", "kB", "MB", "GB", "TB", "PB"])


def py_count(x):
    return py_human(x, ["", "k", "M", "G", "T"]).replace(" ", "")


def py_seconds(x):
    if x == 0:
        return "0 s"
    if x < 1e-3:
        return f"{x * 1e6:.3g} us"
    if x < 1:
        return f"{x * 1e3:.3g} ms"
    if x < 120:
        return f"{x:.3g} s"
    if x < 7200:
        return f"{x / 60:.3g} min"
    return f"{x / 3600:.3g} h"


def py_ratio(x):
    return f"{x:.3g}x" if x < 1000 else f"{x:.0f}x"


def mean(v):
    return float(np.mean(np.asarray(v, dtype=np.float64)))


def std(v):  # sample std over seeds, 0 for one seed (as frugal compare prints it)
    return float(np.std(np.asarray(v, dtype=np.float64), ddof=1)) if len(v) > 1 else 0.0


def rel_equal(a, b, tol=1e-9):
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-300)


def text(v):
    v = np.asarray(v)
    v = v.reshape(()).item() if v.size == 1 else v
    return v.decode() if isinstance(v, bytes) else v


def read_study(study_path, runs_override):
    """The study's rows: label, method, ranks and trace paths, from the study file alone."""
    study = tomllib.loads(Path(study_path).read_text())
    base = Path(study_path).parent
    out_dir = Path(runs_override or study["study"]["out_dir"])
    rows = []
    for r in study["runs"]:
        config = tomllib.loads((base / r["config"]).read_text())
        method = config.get("run", {}).get("method", "ddp")
        for o in r.get("overrides", []):
            key, _, value = o.partition("=")
            if key == "run.method":
                method = value
        seeds = r.get("seeds")
        names = [f"{r['name']}-s{s}" for s in seeds] if seeds else [r["name"]]
        rows.append({"label": r.get("label", r["name"]), "method": method, "ranks": r.get("ranks", 1),
                     "seeds": seeds, "traces": [out_dir / n / "trace.h5" for n in names]})
    return rows


def read_row(row):
    """Every number of one row, recomputed from its traces; checks each trace against itself."""
    label = row["label"]
    acc = {k: [] for k in ("eval", "rate", "bytes", "wall", "flops", "flops_dense", "train_time",
                           "tokens", "per_sync", "syncs")}
    acc["net"], acc["networks"], acc["seed"] = {}, [], []
    for i, path in enumerate(row["traces"]):
        where = f"trace {path}"
        if not check(path.is_file(), where, label, "trace file", "missing", "a trace.h5"):
            continue
        with h5py.File(path, "r") as f:
            a = {k: text(v) for k, v in f.attrs.items()}
            steps = {k: np.asarray(f["steps"][k][...]) for k in f["steps"].keys()}
            evals = {k: np.asarray(f["eval"][k][...]) for k in f["eval"].keys()}
            bytes_sent = np.asarray(f["ranks/bytes_sent"][...], dtype=np.int64)
        check(a["status"] == "finished", where, label, "status", a["status"], "finished")
        check(a["label"] == label, where, label, "label attribute", a["label"], label)
        check(a["method"] == row["method"], where, label, "method attribute", a["method"], row["method"])
        check(int(a["world_size"]) == row["ranks"], where, label, "world_size", a["world_size"], row["ranks"])
        if row["seeds"]:
            check(int(a["seed"]) == row["seeds"][i], where, label, "seed", a["seed"], row["seeds"][i])
        acc["seed"].append(int(a["seed"]))
        # eval loss: the summary attribute is the last evaluation.
        check(len(evals["loss"]) > 0 and float(a["final_eval_loss"]) == float(evals["loss"][-1]), where, label,
              "final_eval_loss vs eval/loss[-1]", a["final_eval_loss"], evals["loss"][-1:])
        acc["eval"].append(float(a["final_eval_loss"]))
        # tokens: final_step x data.batch_size x data.seq_len of the trace's own configuration.
        config = tomllib.loads(a["config"])
        steps_cfg, batch, seq = config["run"]["steps"], config["data"]["batch_size"], config["data"]["seq_len"]
        n = len(steps["step"])
        check(int(a["final_step"]) == steps_cfg == n == int(steps["step"][-1]), where, label, "final_step",
              a["final_step"], f"run.steps {steps_cfg}, {n} rows of steps/, last steps/step {steps['step'][-1]}")
        tokens = int(a["final_step"]) * batch * seq
        check(int(a["tokens_total"]) == tokens == int(steps["tokens"][-1]), where, label, "tokens_total",
              a["tokens_total"], f"{a['final_step']} x {batch} x {seq} = {tokens}, steps/tokens[-1] {steps['tokens'][-1]}")
        check(rel_equal(float(a["tokens_per_s"]), int(a["tokens_total"]) / float(a["wall_time_s"])), where, label,
              "tokens_per_s vs tokens_total / wall_time_s", a["tokens_per_s"], int(a["tokens_total"]) / float(a["wall_time_s"]))
        acc["rate"].append(float(a["tokens_per_s"]))
        acc["tokens"].append(int(a["tokens_total"]))
        # bytes: the summary is the mean over ranks; rank 0's total is the sum of its steps.
        check(len(bytes_sent) == row["ranks"], where, label, "ranks/bytes_sent length", len(bytes_sent), row["ranks"])
        check(float(a["comm_bytes_per_rank"]) == float(np.mean(bytes_sent)), where, label,
              "comm_bytes_per_rank vs mean of ranks/bytes_sent", a["comm_bytes_per_rank"], float(np.mean(bytes_sent)))
        comm = steps["comm_bytes"].astype(np.int64)
        check(int(bytes_sent[0]) == int(comm.sum()), where, label, "ranks/bytes_sent[0] vs sum of steps/comm_bytes",
              int(bytes_sent[0]), int(comm.sum()))
        acc["bytes"].append(float(a["comm_bytes_per_rank"]))
        syncs = int(np.count_nonzero(comm > 0))
        acc["syncs"].append(syncs)
        acc["per_sync"].append(float(comm.sum()) / syncs if syncs else 0.0)
        # modelled network time per preset
        nets = [x for x in str(a["networks"]).split(",") if x]
        acc["networks"] = nets
        for net in nets:
            total = float(steps[f"net_time_{net}"].sum())
            check(rel_equal(float(a[f"net_time_s_{net}"]), total), where, label,
                  f"net_time_s_{net} vs sum of steps/net_time_{net}", a[f"net_time_s_{net}"], total)
            acc["net"].setdefault(net, []).append(float(a[f"net_time_s_{net}"]))
        # FLOPs and time
        flops = float(steps["flops"].sum())
        check(rel_equal(float(a["flops_total"]), flops), where, label, "flops_total vs sum of steps/flops",
              a["flops_total"], flops)
        acc["flops"].append(float(a["flops_total"]))
        if "flops_dense" in steps:
            acc["flops_dense"].append(float(steps["flops_dense"].sum()))
        check(("flops_dense" in steps) == (row["method"] == "est"), where, label, "has steps/flops_dense",
              "flops_dense" in steps, row["method"] == "est")
        train_time = float(steps["step_time"].sum())
        acc["train_time"].append(train_time)
        check(float(a["wall_time_s"]) >= train_time, where, label, "wall_time_s >= sum of steps/step_time",
              a["wall_time_s"], train_time)
        acc["wall"].append(float(a["wall_time_s"]))
    return acc


def parse_compare(path):
    """The header's networks, the rows of the table and the lines after it, from compare's stdout."""
    lines = Path(path).read_text().splitlines()
    heads = [i for i, ln in enumerate(lines) if ln.startswith("run ") and "sent/rank" in ln]
    if not heads:
        return None, [], [], lines
    h = heads[-1]
    networks = [c[len("comm@"):] for c in lines[h].split() if c.startswith("comm@")]
    body, rest = [], []
    for ln in lines[h + 1:]:
        (rest if rest or ln.startswith("(") else body).append(ln)
    return networks, body, rest, lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("study")
    ap.add_argument("compare_stdout")
    ap.add_argument("report_md")
    ap.add_argument("--runs", help="folder of the run folders (default: the study's out_dir)")
    args = ap.parse_args()

    rows = read_study(args.study, args.runs)
    for row in rows:
        row.update(read_row(row))
    ntraces = sum(len(r["traces"]) for r in rows)

    # ---- frugal compare: the table ----
    where = "frugal compare"
    networks, body, rest, lines = parse_compare(args.compare_stdout)
    check(networks is not None, where, "-", "table header", "none found", "a 'run ... sent/rank ...' line")
    networks = networks or []
    study_line = [ln for ln in lines if ln.startswith("== study ")]
    check(len(study_line) == 1 and f": {ntraces} runs in " in study_line[0], where, "-", "study line",
          study_line, f"{ntraces} runs")
    check(networks == rows[0]["networks"], where, "-", "comm@ columns", networks, rows[0]["networks"])
    nets_re = "".join(rf"\s+(?P<net{i}>{TIME}|-)" for i in range(len(networks)))
    row_re = re.compile(
        rf"^(?P<label>.*?)\s+(?P<method>\S+)\s+(?P<ranks>\d+)\s+(?P<seeds>\d+)\s+(?P<em>{NUM}) \+- (?P<es>{NUM})"
        rf"\s+(?P<rate>{NUM})\s+(?P<sent>(?:{NUM}) [kMGTP]?B){nets_re}\s+(?P<flops>(?:{NUM})(?: [kMGTP])?)"
        rf"\s+(?P<train>{TIME})\s+(?P<wall>{TIME})\s*$")
    printed = []
    for ln in body:
        if not ln.strip():
            continue
        m = row_re.match(ln)
        if check(m is not None, where, "-", "table row", ln, "a row of the documented layout"):
            printed.append(m)
    check([m["label"] for m in printed] == [r["label"] for r in rows], where, "-", "rows (labels, in study order)",
          [m["label"] for m in printed], [r["label"] for r in rows])
    by_label = {m["label"]: m for m in printed}
    for r in rows:
        m, label = by_label.get(r["label"]), r["label"]
        if m is None:
            continue
        check(m["method"] == r["method"], where, label, "method", m["method"], r["method"])
        check(int(m["ranks"]) == r["ranks"], where, label, "ranks", m["ranks"], r["ranks"])
        check(int(m["seeds"]) == len(r["traces"]), where, label, "seeds", m["seeds"], len(r["traces"]))
        em, es = mean(r["eval"]), std(r["eval"])
        check(agree(m["em"], "%.5g" % em, sig=5), where, label, "eval loss mean", m["em"], f"{em!r} ('%.5g')")
        check(agree(m["es"], "%.2g" % es, sig=2), where, label, "eval loss std", m["es"], f"{es!r} ('%.2g')")
        rate = mean(r["rate"])
        check(agree(m["rate"], "%.0f" % rate, decimals=0), where, label, "tokens/s", m["rate"], rate)
        sent = mean(r["bytes"])
        check(agree(m["sent"], c_si(sent, "B"), sig=3), where, label, "sent/rank", m["sent"], f"{sent!r} B ('{c_si(sent, 'B')}')")
        for i, net in enumerate(networks):
            t = mean(r["net"].get(net, [math.nan]))
            check(agree(m[f"net{i}"], c_seconds(t), sig=3), where, label, f"comm@{net}", m[f"net{i}"],
                  f"{t!r} s ('{c_seconds(t)}')")
        flops = mean(r["flops"])
        check(agree(m["flops"], c_si(flops, ""), sig=3), where, label, "FLOPs", m["flops"], f"{flops!r} ('{c_si(flops, '')}')")
        tt = mean(r["train_time"])
        check(agree(m["train"], c_seconds(tt), sig=3), where, label, "train time", m["train"], f"{tt!r} s ('{c_seconds(tt)}')")
        wall = mean(r["wall"])
        check(agree(m["wall"], c_seconds(wall), sig=3), where, label, "wall", m["wall"], f"{wall!r} s ('{c_seconds(wall)}')")

    # ---- frugal compare: the EST vs dense line ----
    est = [r for r in rows if r["method"] == "est"]
    dense = [r for r in rows if r["method"] == "ddp" and r["ranks"] == est[0]["ranks"]] if est else []
    vs_lines = [ln for ln in rest if re.search(rf": training FLOPs (?:{NUM})%, ", ln)]
    if est and dense:
        e, d = est[0], dense[0]
        # the premise of the pairing: DDP did the EST row's dense-equivalent work in full
        check(rel_equal(mean(d["flops"]), mean(e["flops_dense"])), "traces", e["label"],
              "dense-equivalent FLOPs vs the DDP row's flops_total", mean(e["flops_dense"]), mean(d["flops"]))
        prefix = f"{e['label']} vs {d['label']}: "
        check(len(vs_lines) == 1 and vs_lines[0].startswith(prefix), where, e["label"], "EST vs dense line",
              vs_lines, f"one line starting '{prefix}'")
        vm = re.fullmatch(
            rf"training FLOPs (?P<f>{NUM})%, train time (?P<t>{NUM})%, eval loss (?P<diff>{NUM}) "
            rf"\((?P<em>{NUM}) \+- (?P<es>{NUM}) vs (?P<dm>{NUM}) \+- (?P<ds>{NUM})\)",
            vs_lines[0][len(prefix):] if len(vs_lines) == 1 and vs_lines[0].startswith(prefix) else "")
        if check(vm is not None, where, e["label"], "EST vs dense line layout", vs_lines, "the documented layout"):
            fp = 100.0 * (mean(e["flops"]) / mean(d["flops"]) - 1.0)
            tp = 100.0 * (mean(e["train_time"]) / mean(d["train_time"]) - 1.0)
            diff = mean(e["eval"]) - mean(d["eval"])
            label = f"{e['label']} vs {d['label']}"
            check(agree(vm["f"], "%+.1f" % fp, decimals=1), where, label, "training FLOPs %", vm["f"], fp)
            check(agree(vm["t"], "%+.1f" % tp, decimals=1), where, label, "train time %", vm["t"], tp)
            check(agree(vm["diff"], "%+.4g" % diff, sig=4), where, label, "eval loss difference", vm["diff"], diff)
            for key, v, fmt, sig in (("em", mean(e["eval"]), "%.5g", 5), ("es", std(e["eval"]), "%.2g", 2),
                                     ("dm", mean(d["eval"]), "%.5g", 5), ("ds", std(d["eval"]), "%.2g", 2)):
                check(agree(vm[key], fmt % v, sig=sig), where, label, f"eval loss ({key})", vm[key], v)
    else:
        check(not vs_lines, where, "-", "EST vs dense line", vs_lines, "none (no EST and DDP rows)")

    # ---- report.py: report.md ----
    where = "report.md"
    md = Path(args.report_md).read_text().splitlines()

    def tables():
        out, cur, section = [], None, ""
        for ln in md:
            if ln.startswith("#"):
                section = ln
            if ln.startswith("|"):
                cells = [c.strip() for c in ln.strip()[1:-1].split(" | ")]
                if cur is None:
                    cur = {"section": section, "header": cells, "rows": []}
                    out.append(cur)
                elif not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    cur["rows"].append(dict(zip(cur["header"], cells)))
            else:
                cur = None
        return out

    tabs = tables()
    main_t = [t for t in tabs if "bytes/rank" in t["header"]]
    est_t = [t for t in tabs if t["section"].startswith("## EST vs dense")]
    check(len(main_t) == 1, where, "-", "main table", len(main_t), 1)
    md_rows = {x["label"]: x for x in main_t[0]["rows"]} if main_t else {}
    check(sorted(md_rows) == sorted(r["label"] for r in rows), where, "-", "labels", sorted(md_rows),
          sorted(r["label"] for r in rows))
    # compression baseline (pick_baseline): the DiLoCo row that sends the most, else DDP, else the most
    sent = {r["label"]: mean(r["bytes"]) for r in rows}
    base = None
    for method in ("diloco", "ddp"):
        cand = [r for r in rows if r["method"] == method and sent[r["label"]] > 0]
        if cand:
            base = max(cand, key=lambda r: sent[r["label"]])
            break
    base = base or max(rows, key=lambda r: sent[r["label"]])
    note = [ln for ln in md if ln.startswith("- compression = bytes/rank of '")]
    check(len(note) == 1 and note[0].startswith(f"- compression = bytes/rank of '{base['label']}' /"), where,
          base["label"], "compression baseline", note, f"'{base['label']}'")
    for r in rows:
        x, label = md_rows.get(r["label"]), r["label"]
        if x is None:
            continue
        check(x["method"] == r["method"], where, label, "method", x["method"], r["method"])
        check(x["ranks"] == str(r["ranks"]), where, label, "ranks", x["ranks"], r["ranks"])
        check(x["seeds"] == str(len(r["traces"])), where, label, "seeds", x["seeds"], len(r["traces"]))
        em, es = mean(r["eval"]), std(r["eval"])
        parts = x["final eval loss"].split(" ± ")
        if len(r["traces"]) > 1:
            check(len(parts) == 2 and agree(parts[0], f"{em:.4f}", decimals=4) and agree(parts[1], f"{es:.4f}", decimals=4),
                  where, label, "final eval loss", x["final eval loss"], f"{em!r} ± {es!r} ('%.4f ± %.4f')")
        else:
            check(len(parts) == 1 and agree(parts[0], f"{em:.4f}", decimals=4), where, label, "final eval loss",
                  x["final eval loss"], f"{em!r} ('%.4f', one seed: no std)")
        s = sent[label]
        check(agree(x["bytes/rank"], py_bytes(s), sig=3), where, label, "bytes/rank", x["bytes/rank"], f"{s!r} B ('{py_bytes(s)}')")
        ratio = sent[base["label"]] / s
        check(agree(x["compression"], py_ratio(ratio), sig=3), where, label, "compression", x["compression"],
              f"{sent[base['label']]!r} / {s!r} = {ratio!r} ('{py_ratio(ratio)}')")
        ps = mean(r["per_sync"])
        check(agree(x["bytes/rank/sync"], py_bytes(ps), sig=3), where, label, "bytes/rank/sync", x["bytes/rank/sync"], ps)
        for col, v, fmt in (("tokens", mean(r["tokens"]), py_count), ("tokens/s", mean(r["rate"]), py_count),
                            ("train FLOPs", mean(r["flops"]), py_count), ("train time", mean(r["train_time"]), py_seconds),
                            ("wall time", mean(r["wall"]), py_seconds)):
            check(agree(x.get(col, "?"), fmt(v), sig=3), where, label, col, x.get(col), f"{v!r} ('{fmt(v)}')")
        for net in r["networks"]:
            v = mean(r["net"][net])
            check(agree(x.get(f"comm @{net}", "?"), py_seconds(v), sig=3), where, label, f"comm @{net}",
                  x.get(f"comm @{net}"), f"{v!r} s ('{py_seconds(v)}')")

    # EST vs dense: seeds both rows ran are compared pairwise; savings 1 - est/dense, in %.
    if est and dense:
        e, d = est[0], dense[0]
        label = f"{e['label']} vs {d['label']}"
        erows = [x for t in est_t for x in t["rows"]]
        check(len(erows) == 1 and erows[0].get("EST label") == e["label"] and erows[0].get("dense label") == d["label"],
              where, label, "EST vs dense table", [(x.get("EST label"), x.get("dense label")) for x in erows],
              [(e["label"], d["label"])])
        x = erows[0] if erows else {}
        es_ = dict(zip(e["seed"], range(len(e["seed"]))))
        ds_ = dict(zip(d["seed"], range(len(d["seed"]))))
        common = sorted(set(es_) & set(ds_))
        check(x.get("seeds") == str(len(common)) and len(common) > 1, where, label, "seeds", x.get("seeds"),
              f"{len(common)} common seeds")

        def pct(values):
            mu = mean(values)
            sd = std(values)
            if sd <= 1e-9 * max(abs(mu), 1e-30):
                return f"{100 * mu:.1f}%"
            return f"{100 * mu:.1f}% ± {100 * sd:.1f}%"

        def pct_agree(printed, expected):
            p, q = printed.split(" ± "), expected.split(" ± ")
            return len(p) == len(q) and all(agree(a, b, decimals=1) for a, b in zip(p, q))

        fs = [1 - e["flops"][es_[s]] / d["flops"][ds_[s]] for s in common]
        ts = [1 - e["train_time"][es_[s]] / d["train_time"][ds_[s]] for s in common]
        diffs = [e["eval"][es_[s]] - d["eval"][ds_[s]] for s in common]
        check(pct_agree(x.get("FLOPs saving", "?"), pct(fs)), where, label, "FLOPs saving", x.get("FLOPs saving"),
              f"per seed {fs} ('{pct(fs)}')")
        check(pct_agree(x.get("train-time saving", "?"), pct(ts)), where, label, "train-time saving",
              x.get("train-time saving"), f"per seed {ts} ('{pct(ts)}')")
        exp = f"{mean(diffs):+.4f} ± {std(diffs):.4f}"
        got = x.get("loss EST − dense", "?").split(" ± ")
        check(len(got) == 2 and agree(got[0], f"{mean(diffs):+.4f}", decimals=4) and agree(got[1], f"{std(diffs):.4f}", decimals=4),
              where, label, "loss EST − dense", x.get("loss EST − dense"), f"per seed {diffs} ('{exp}')")
    else:
        check(not est_t, where, "-", "EST vs dense table", "present", "none")

    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        print(f"{len(failures)} of {checks} checks failed")
        return 1
    print(f"ok:   {checks} checks: {len(rows)} labels, {ntraces} traces, frugal compare's table and "
          f"EST vs dense line, report.md's tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
PY

# 1. the study, through frugal compare
start=$SECONDS
rc=0
"$bin" compare "$scratch/study.toml" --run.log_every=0 >"$scratch/compare.out" 2>"$scratch/compare.err" || rc=$?
[ "$rc" -eq 0 ] || fail "frugal compare exited with status $rc (its output is below and in $scratch/compare.out, .err)"
sed -n '/^== study /,$p' "$scratch/compare.out"

# 2. report.py on the same traces
rc=0
"$python" "$src/analysis/report.py" "$out_dir" --out "$scratch/report" >"$scratch/report.out" 2>"$scratch/report.err" || rc=$?
[ "$rc" -eq 0 ] || fail "report.py exited with status $rc (stderr below and in $scratch/report.err)"
[ -s "$scratch/report/report.md" ] || fail "report.py wrote no $scratch/report/report.md"

# 3. every printed number against the traces
"$python" "$scratch/check_tables.py" "$scratch/study.toml" "$scratch/compare.out" "$scratch/report/report.md" \
  || fail "the printed tables and the traces differ (lines above; the checker is $scratch/check_tables.py)"

echo "PASS: frugal compare's table (4 labels, 6 runs: label, method, ranks, seeds, eval loss mean +- std," \
  "tokens/s, sent/rank, comm@network, FLOPs, train time, wall), its EST vs dense line and report.md" \
  "(eval loss, bytes/rank, compression, EST vs dense savings, ...) match the traces read with h5py" \
  "($((SECONDS - start)) s)"
