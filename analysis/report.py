#!/usr/bin/env python3
"""Compare frugal runs: one table row per label (mean +- std over seeds) and plots of the metric.

    python analysis/report.py RUN_DIR_OR_TRACE... [--out DIR] [--threshold-loss X]
                              [--threshold-return X] [--include-unfinished]

Finds every trace.h5 under the given folders (the format is src/trace/SCHEMA.md), prints an
aligned table, writes it as Markdown to OUT/report.md, and draws plots into OUT (default: the
first folder given). What a run counts and measures is read from each trace, not known here: the
root attributes sample_unit ("tokens", "env_steps" or "generated_tokens"), train_metric and
eval_metric ("loss", "return", "reward", "accuracy") and higher_is_better (0 or 1) are its
vocabulary (src/harness/vocabulary.hpp defines them), and they name the columns read
(steps/<sample_unit>, steps/<train_metric>, eval/<eval_metric>), the summary attributes, the
table's columns and the plots. Traces written before higher_is_better existed lack it: higher is
better exactly when eval_metric is "return". Traces without the three names are language-model
traces (tokens, loss, loss; lower is better).
A report covers traces of one vocabulary: language-model and RL traces are never reported together.
The one exception is RL on a language model (RLVR), whose folders often hold the supervised runs
it starts from (method sft: sample_unit "tokens", the same eval_metric "accuracy"): such warm
starts are skipped, named in a warning and in report.md, and the RLVR traces reported.

Traces that count tokens (language models): one table, and loss_vs_tokens.png,
loss_vs_bytes.png, loss_vs_time.png (wall time, evaluation included) and loss_vs_flops.png
(cumulative training FLOPs, steps/flops); the names are <eval_metric>_vs_<axis>.png. The
table's train FLOPs and train time (sum of steps/step_time) leave evaluation out; wall time does
not. --threshold-loss X adds the tokens, bytes per rank and wall time needed to reach the
threshold (loss <= X; >= X for a metric where higher is better).
A trace with steps/flops_dense trained a subnetwork (EST, evolving subnetwork training) and says
what the dense model would have cost. Such a label is compared with a label whose traces have no
steps/flops_dense, of the same world size and whose train FLOPs equal that dense cost (relative
difference <= 1e-9: it did the same work in full); if several qualify, the one that
synchronised as often (steps that sent bytes) is taken, then the first. The "EST vs dense"
table gives the FLOPs and train-time savings and the final eval loss of both, seed by seed where
both labels ran the same seeds.

Traces that count environment steps (RL): returns of different environments are not comparable,
so the traces are grouped by environment (env.name in their config): one table, one section of
report.md and two plots per environment, return_vs_env_steps.png and return_vs_time.png (the
environment's name is appended, e.g. return_vs_env_steps_CartPole-v1.png, when the traces cover
several). The table gives the env steps and wall time to the first evaluation whose return is
>= a threshold (<= for a metric where lower is better).
Seeds of one label are averaged on the plotted axis (env steps, wall time): where their x values
differ (evolution strategies stop at different steps), each seed's curve is interpolated onto a
common grid over the x range every seed covers.
--threshold-return X sets it for every environment; the defaults are
    CartPole-v1   475   Gymnasium's reward_threshold
    Acrobot-v1   -100   Gymnasium's reward_threshold
    Pendulum-v1  -200   our choice (Gymnasium gives none): a random policy scores about -1200,
                        one that swings up and holds the pendulum from most starts about -150..-200
and an environment without a default gets no threshold columns.

Traces that count generated tokens (RL on a language model: grpo, eggroll_lm): accuracies of
different tasks are not comparable either, so they are grouped the same way, by task (task.name
in their config): one table, one section of report.md and three plots per task,
accuracy_vs_step.png, accuracy_vs_generated_tokens.png and accuracy_vs_time.png (as for
environments, the task's name is appended when the traces cover several, e.g.
accuracy_vs_step_arithmetic.png). The table gives the base accuracy, the final eval accuracy, the
generated tokens and their rate, bytes sent per rank and wall time; no thresholds.

In both grouped reports, a trace evaluated before its first step (eval.at_start: an eval/ row at
step 0, the starting model) gives the table a "base <eval_metric>" column: that row's value, mean
over the seeds that have one ("—" for a label without); the column is left out when no trace of
the table has such a row.

Exit status 2 on a missing folder, no traces, a trace that breaks the schema, traces of
different vocabularies (e.g. language-model and RL traces) given together (bar the RLVR warm
starts above), or a threshold option for another kind of trace (--threshold-loss: language
models; --threshold-return: environments).
"""
import argparse
import os
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

# A live run keeps its trace open for writing; HDF5's file locking would then refuse even a
# read-only open. The variable must be set before h5py loads the HDF5 library.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import h5py  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

ENDED = ("finished", "stopped")  # the statuses whose traces carry the summary attributes
_REQUIRED = object()


class Vocabulary(NamedTuple):
    """The names a trace uses for what it counts and measures (root attributes sample_unit,
    train_metric, eval_metric and higher_is_better; src/harness/vocabulary.hpp defines them). They
    name the steps/ and eval/ columns and the summary attributes: <samples>_total,
    <samples>_per_s, final_train_<train>, final_eval_<eval>. Hashable: runs are grouped by it."""
    kind: str  # for messages: "language-model", "RL" or "RLVR", derived from samples
    samples: str
    train: str
    eval: str
    higher_is_better: bool

    def describe(self):
        """The vocabulary in words, for messages."""
        return (f"sample_unit '{self.samples}', train_metric '{self.train}', eval_metric "
                f"'{self.eval}', {'higher' if self.higher_is_better else 'lower'} is better")


# What each sample unit is called in messages; an unknown one counts as RL (as before RLVR).
KINDS = {"tokens": "language-model", "env_steps": "RL", "generated_tokens": "RLVR"}


class Grouping(NamedTuple):
    """How the traces of a vocabulary are split into groups that are reported apart, because their
    metrics are not comparable across groups: the group is the configuration key `key` (a
    "section.name" of the trace's config). The grouped report gives each group a table, a report.md
    section and one plot per axis (plot_axes of aggregate: "step", "samples", "time")."""
    key: str  # configuration key naming the group: env.name, task.name
    noun: str  # what a group is, for messages: environment, task
    axes: tuple  # the plots' x axes, in the order drawn
    thresholds: bool  # per-group thresholds of the eval metric (--threshold-return)
    totals: bool  # a column of the samples taken (e.g. generated tokens)
    warm_start: str | None = None  # sample unit of the supervised runs it starts from (skipped)


# Per sample unit: environment steps are grouped by environment (with return thresholds), generated
# tokens (RL on a language model) by task.
GROUPINGS = {
    "env_steps": Grouping("env.name", "environment", ("samples", "time"), thresholds=True, totals=False),
    "generated_tokens": Grouping("task.name", "task", ("step", "samples", "time"), thresholds=False,
                                 totals=True, warm_start="tokens"),
}


def grouping(vocab):
    """How traces of this vocabulary are grouped (a Grouping), or None for the one-table report
    (language models). This is what the group-specific parts of the report key on: the grouping
    key, the per-environment return thresholds and --threshold-return, the plots' axes. Everything
    else follows the vocabulary's names and higher_is_better."""
    return GROUPINGS.get(vocab.samples)


def words(name):
    """A vocabulary name for a label: env_steps -> env steps."""
    return name.replace("_", " ")

# Default --threshold-return per environment; see the module docstring for where they come from.
DEFAULT_RETURN_THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "Pendulum-v1": -200.0}


def die(message):
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    sys.exit(2)


def warn(message):
    print(f"{Path(sys.argv[0]).name}: warning: {message}", file=sys.stderr)


def plain(value):
    """HDF5 attribute -> Python str/int/float. The C++ writer may use fixed-length strings
    (h5py gives bytes) or one-element arrays instead of scalars."""
    value = np.asarray(value)
    if value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace").rstrip("\0")
    return value


def find_traces(paths):
    traces = []
    for path in map(Path, paths):
        if not path.exists():
            die(f"{path}: no such file or folder")
        found = sorted(path.rglob("trace.h5")) if path.is_dir() else [path]
        if not found:
            warn(f"{path}: no trace.h5 inside")
        traces += found
    unique = list(dict.fromkeys(p.resolve() for p in traces))  # same trace named twice
    if not unique:
        die(f"no trace.h5 found under {', '.join(map(str, paths))}")
    return unique


def summary_fields(vocab):
    """The summary attributes of a trace with this vocabulary, named as the trace names them."""
    return (f"final_train_{vocab.train}", f"final_eval_{vocab.eval}", f"{vocab.samples}_total",
            f"{vocab.samples}_per_s", "comm_bytes_per_rank", "wall_time_s")


def read_vocabulary(path, attr):
    """The trace's vocabulary, from its root attributes. Traces written before sample_unit,
    train_metric and eval_metric existed are language-model traces (tokens, loss, loss); traces
    written before higher_is_better existed have higher_is_better = (eval_metric == "return")."""
    names = ("sample_unit", "train_metric", "eval_metric")
    found = [attr(name, None) for name in names]
    if all(v is None for v in found):
        found = ["tokens", "loss", "loss"]
    elif any(v is None for v in found):
        has = ", ".join(n for n, v in zip(names, found) if v is not None)
        lacks = ", ".join(n for n, v in zip(names, found) if v is None)
        die(f"{path}: has root attribute(s) {has} but not {lacks} (see src/trace/SCHEMA.md)")
    samples, train, eval_ = (str(v) for v in found)
    if not all((samples, train, eval_)):
        die(f"{path}: an empty sample_unit, train_metric or eval_metric (see src/trace/SCHEMA.md)")
    higher = attr("higher_is_better", None)
    if higher is None:
        higher = eval_ == "return"
    elif isinstance(higher, (int, np.integer)) and higher in (0, 1):
        higher = bool(higher)
    else:
        die(f"{path}: root attribute higher_is_better is {higher!r}, expected 0 or 1")
    kind = KINDS.get(samples, "RL")
    return Vocabulary(kind, samples, train, eval_, higher)


def read_group(path, config_text, vocab):
    """The trace's group: the value of its grouping's key (env.name, task.name) in its
    configuration (TOML)."""
    group = grouping(vocab)
    try:
        config = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as e:
        die(f"{path}: root attribute 'config' is not valid TOML ({e})")
    section, _, key = group.key.partition(".")
    name = config.get(section, {}).get(key)
    if not name:
        die(f"{path}: a trace of {words(vocab.samples)} whose config has no {group.key} (such "
            f"traces are reported per {group.noun})")
    return str(name)


def load_run(path):
    """Read one trace into a dict: identity, summary numbers (keyed by their attribute names) and
    the curves of its metric (the vocabulary's train and eval metric, e.g. loss or return)."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        die(f"{path}: cannot open as HDF5 ({e})")
    with f:
        def attr(name, default=_REQUIRED):
            if name in f.attrs:
                return plain(f.attrs[name])
            if default is _REQUIRED:
                die(f"{path}: missing root attribute '{name}' (see src/trace/SCHEMA.md)")
            return default

        def column(group, name):
            if f"{group}/{name}" not in f:
                die(f"{path}: missing dataset '{group}/{name}' (see src/trace/SCHEMA.md)")
            return np.asarray(f[group][name][...], dtype=np.float64).reshape(-1)

        vocab = read_vocabulary(path, attr)
        run = {"path": str(path), "label": str(attr("label")), "method": str(attr("method")),
               "ranks": int(attr("world_size")), "seed": int(attr("seed")),
               "status": str(attr("status")), "vocab": vocab,
               "group": read_group(path, str(attr("config")), vocab) if grouping(vocab) else None}
        run["networks"] = [n.strip() for n in str(attr("networks")).split(",") if n.strip()]
        # The one-table report also needs the compute columns (train FLOPs and time, the FLOPs
        # plot); the grouped report uses neither, so its traces are not held to them.
        compute = () if grouping(vocab) else ("flops", "step_time")
        steps = {name: column("steps", name)
                 for name in ("step", "wall_time", vocab.samples, vocab.train, "comm_bytes") + compute}
        if len({len(v) for v in steps.values()}) != 1:
            die(f"{path}: the steps/ datasets have different lengths")
        # eval/ may be empty (no evaluation configured); an absent group counts as empty.
        has_eval = "eval" in f and len(f["eval"].keys()) > 0
        evals = {name: column("eval", name) if has_eval else np.zeros(0)
                 for name in ("step", vocab.samples, vocab.eval)}
        nets = {n: column("steps", f"net_time_{n}") if f"steps/net_time_{n}" in f else None
                for n in run["networks"]}
        # A trace of a subnetwork (EST) says what the dense model would have cost; the EST vs
        # dense section pairs it by this with the label that did the same work in full.
        if "steps/flops_dense" in f:
            run["train_flops_dense"] = float(column("steps", "flops_dense").sum())

        # Summary attributes exist once a run has ended; for a live or crashed run
        # (--include-unfinished) the same numbers are rebuilt from its steps/.
        def last(a):
            return a[-1] if len(a) else np.nan

        samples_total, wall_time = last(steps[vocab.samples]), last(steps["wall_time"])
        derived = {f"final_train_{vocab.train}": last(steps[vocab.train]),
                   f"final_eval_{vocab.eval}": last(evals[vocab.eval]),
                   f"{vocab.samples}_total": samples_total,
                   f"{vocab.samples}_per_s": samples_total / wall_time if wall_time > 0 else np.nan,
                   "comm_bytes_per_rank": steps["comm_bytes"].sum(), "wall_time_s": wall_time}
        for n, per_step in nets.items():
            derived[f"net_time_s_{n}"] = per_step.sum() if per_step is not None else np.nan
        required = run["status"] in ENDED
        for name in list(summary_fields(vocab)) + [f"net_time_s_{n}" for n in run["networks"]]:
            run[name] = float(attr(name, _REQUIRED if required else derived[name]))

    # Bytes a rank sent per synchronisation: per outer step for DiLoCo/SparseLoCo, per step for
    # DDP/DeMo (steps that sent nothing are inner steps).
    syncs = int(np.count_nonzero(steps["comm_bytes"] > 0))
    run["bytes_per_sync"] = float(steps["comm_bytes"].sum()) / syncs if syncs else 0.0
    run["syncs"] = float(syncs)  # EST vs dense: a tie-break between equally costly dense labels
    # The starting point (eval.at_start): the evaluation at step 0, before any update.
    at_start = np.flatnonzero(evals["step"] == 0)
    run["start_eval"] = float(evals[vocab.eval][at_start[0]]) if len(at_start) else np.nan

    # Curves: "samples" is what the vocabulary counts (tokens, env steps), "metric" what it
    # measures (loss, return). Cumulative bytes and wall time are read at the step each
    # evaluation followed (an evaluation before the first step reads 0).
    cum_bytes = np.concatenate([[0.0], np.cumsum(steps["comm_bytes"])])
    wall = np.concatenate([[0.0], steps["wall_time"]])
    done = np.searchsorted(steps["step"], evals["step"], side="right")
    run["eval_curve"] = {"step": evals["step"], "samples": evals[vocab.samples],
                         "metric": evals[vocab.eval], "bytes": cum_bytes[done], "time": wall[done]}
    run["train_curve"] = {"step": steps["step"], "samples": steps[vocab.samples],
                          "metric": steps[vocab.train], "bytes": cum_bytes[1:],
                          "time": steps["wall_time"]}
    if "flops" in steps:
        # Training compute only: steps/flops and steps/step_time leave evaluation out, unlike
        # wall_time. FLOPs at an evaluation are read like the bytes, at the step it followed.
        cum_flops = np.concatenate([[0.0], np.cumsum(steps["flops"])])
        run["eval_curve"]["flops"], run["train_curve"]["flops"] = cum_flops[done], cum_flops[1:]
        run["train_flops"] = float(cum_flops[-1])
        run["train_time_s"] = float(steps["step_time"].sum())
    return run


def warm_starts_of(vocab, others):
    """Whether every vocabulary in others is that of the supervised warm starts of vocab's traces
    (RLVR: sample_unit tokens and the same eval metric, i.e. sft), which a report of vocab skips."""
    group = grouping(vocab)
    return bool(group and group.warm_start) and \
        all(o.samples == group.warm_start and o.eval == vocab.eval for o in others)


def one_vocabulary(runs):
    """The vocabulary to report, the runs of it and the runs left out. Refuses traces of different
    vocabularies (e.g. language-model and RL traces) in one report, except the warm starts of RL on
    a language model (warm_starts_of), which are left out with a warning."""
    by_vocab = {}
    for run in runs:
        by_vocab.setdefault(run["vocab"], []).append(run)
    reported = [v for v in by_vocab if warm_starts_of(v, [o for o in by_vocab if o != v])]
    if len(by_vocab) > 1 and len(reported) == 1:
        vocab = reported[0]
        skipped = [r for v, rs in by_vocab.items() if v != vocab for r in rs]
        warn(f"reporting the {len(by_vocab[vocab])} {vocab.kind} trace(s) ({vocab.describe()}); "
             f"skipping {len(skipped)} trace(s) of their supervised warm starts (another sample unit): "
             + ", ".join(r["path"] for r in skipped))
        return vocab, by_vocab[vocab], skipped
    if len(by_vocab) > 1:
        kinds = list(dict.fromkeys(v.kind for v in by_vocab))
        what = (f"{', '.join(kinds[:-1])} and {kinds[-1]} traces" if len(kinds) > 1 else
                f"{kinds[0]} traces of different vocabularies")
        found = "; ".join(f"{len(rs)} {v.kind} trace(s) ({v.describe()}), e.g. {rs[0]['path']}"
                          for v, rs in by_vocab.items())
        die(f"cannot report {what} together (their samples and metrics are not comparable): "
            f"{found}. Give report.py the folders of one kind.")
    return runs[0]["vocab"], runs, []


def mean_std(values):
    """Mean and sample std (ddof=1: seeds are a sample) over the finite values; NaN if none."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return np.nan, np.nan
    return v.mean(), v.std(ddof=1) if len(v) > 1 else np.nan


def mean_curve(label, curves):
    """Align the seeds' curves on the steps they all have; mean x, mean/min/max metric."""
    common = curves[0]["step"]
    for c in curves[1:]:
        common = np.intersect1d(common, c["step"])
    if len(curves) > 1 and len(common) < max(len(c["step"]) for c in curves):
        warn(f"label '{label}': seeds differ in their evaluation steps; plotting the "
             f"{len(common)} steps they share")
    rows = [np.searchsorted(c["step"], common) for c in curves]
    # Every x axis the curves have (traces with compute columns add flops to samples, bytes
    # and time).
    stack = {k: np.array([c[k][r] for c, r in zip(curves, rows)]) for k in curves[0] if k != "step"}
    out = {k: v.mean(axis=0) for k, v in stack.items()}
    out["lo"], out["hi"] = stack["metric"].min(axis=0), stack["metric"].max(axis=0)
    out["step"] = np.asarray(common, dtype=np.float64)  # an x axis too (the grouped report's step plot)
    return out


CURVE_GRID_POINTS = 100  # points of the common x grid where seeds' x values differ (per environment)


def mean_curve_on(label, curves, x_key):
    """Average the seeds' curves on the plotted axis x_key (per environment: samples, wall time).
    Seeds with identical x values are averaged point by point; otherwise each seed's metric is
    interpolated (np.interp, no extrapolation) onto CURVE_GRID_POINTS points from the largest first
    x to the smallest last x (seeds that share no x range fall back to mean_curve). Returns x_key, mean
    metric and the seeds' min/max metric."""
    xs = [np.asarray(c[x_key], dtype=np.float64) for c in curves]
    if all(len(x) == len(xs[0]) and np.array_equal(x, xs[0]) for x in xs[1:]):
        grid, ys = xs[0], [c["metric"] for c in curves]
    elif any(len(x) == 0 for x in xs):
        warn(f"label '{label}': some seeds have no points; the label is left out of the plot")
        grid, ys = np.zeros(0), [np.zeros(0) for _ in curves]
    else:
        start, stop = max(x[0] for x in xs), min(x[-1] for x in xs)
        if start > stop:  # no x range common to all seeds (e.g. one evaluation each)
            return mean_curve(label, curves)  # aligned on steps, at the seeds' mean x
        grid = np.linspace(start, stop, CURVE_GRID_POINTS if stop > start else 1)
        ys = [np.interp(grid, x, c["metric"]) for x, c in zip(xs, curves)]
    stack = np.array(ys, dtype=np.float64).reshape(len(curves), len(grid))
    return {x_key: grid, "metric": stack.mean(axis=0), "lo": stack.min(axis=0), "hi": stack.max(axis=0)}


def first_reach(curve, threshold, higher_is_better):
    """(samples, bytes, time) at the first point whose metric reaches the threshold (>= it where
    higher is better, e.g. a return; <= it otherwise, e.g. a loss), or None."""
    metric = curve["metric"]
    hit = np.flatnonzero(metric >= threshold if higher_is_better else metric <= threshold)
    if len(hit) == 0:
        return None
    i = hit[0]
    return curve["samples"][i], curve["bytes"][i], curve["time"][i]


def aggregate(runs, fields, curve_key, threshold=None, plot_axes=None):
    """One row per label, in the order labels were first seen: (mean, std) of each field over
    the seeds, their mean curve (aligned on steps; with plot_axes, one per axis, averaged on it,
    under "curves") and, with a threshold, (mean, std) of the samples, bytes and time
    to reach it over the seeds that did."""
    groups = {}
    for run in runs:
        groups.setdefault(run["label"], []).append(run)
    rows = []
    for label, members in groups.items():
        for key in ("method", "ranks"):
            if len({m[key] for m in members}) > 1:
                warn(f"label '{label}' mixes runs with different {key}; they are averaged anyway")
        seeds = [m["seed"] for m in members]
        if len(set(seeds)) < len(seeds):
            warn(f"label '{label}' has several runs with the same seed: "
                 + ", ".join(m["path"] for m in members))
        row = {"label": label, "n": len(members),
               "method": ",".join(sorted({m["method"] for m in members})),
               "ranks": ",".join(str(r) for r in sorted({m["ranks"] for m in members})),
               "unfinished": any(m["status"] != "finished" for m in members)}
        for key in fields:
            row[key] = mean_std([m.get(key, np.nan) for m in members])
        if plot_axes is None:
            row["curve"] = mean_curve(label, [m[curve_key] for m in members])
        else:
            row["curves"] = {x: mean_curve_on(label, [m[curve_key] for m in members], x)
                             for x in plot_axes}
        if threshold is not None:
            higher_is_better = members[0]["vocab"].higher_is_better
            hits = [h for h in (first_reach(m[curve_key], threshold, higher_is_better)
                                for m in members) if h]
            row["reached"] = len(hits)
            row["to_threshold"] = [mean_std(values) for values in zip(*hits)] if hits else None
        rows.append(row)
    return rows


def pick_baseline(rows):
    """The dense reference for the compression column: dense fp32 DiLoCo when the study has it (the
    comparison SparseLoCo's compression is quoted against), else the DDP run that communicates (a
    one-rank DDP run is plain AdamW and sends nothing), else the row that sends the most bytes."""
    sent = lambda r: np.nan_to_num(r["comm_bytes_per_rank"][0])
    for method in ("diloco", "ddp"):
        dense = [r for r in rows if r["method"] == method and sent(r) > 0]
        if dense:
            return max(dense, key=sent)
    return max(rows, key=sent)


def human(x, units, step=1000.0):
    if not np.isfinite(x):
        return "n/a"
    for unit in units[:-1]:
        if abs(x) < step:
            return f"{x:.3g} {unit}".rstrip()
        x /= step
    return f"{x:.3g} {units[-1]}"


def fmt_bytes(x):  # SI units, like the Gbit/s the network presets are given in
    return human(x, ["B", "kB", "MB", "GB", "TB", "PB"])


def fmt_count(x):
    return human(x, ["", "k", "M", "G", "T"]).replace(" ", "")


def fmt_seconds(x):
    if not np.isfinite(x):
        return "n/a"
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


def fmt_ratio(x):
    if not np.isfinite(x):
        return "n/a"
    return f"{x:.3g}x" if x < 1000 else f"{x:.0f}x"


def fmt_loss(ms, pm):
    mean, std = ms
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.4f} {pm} {std:.4f}" if np.isfinite(std) else f"{mean:.4f}"


def fmt_return(x):
    return f"{x:.1f}" if np.isfinite(x) else "n/a"


def fmt_mean_std(ms, fmt, pm):
    """'mean +- std' in the column's unit; the std is left out where there is one seed or the
    seeds agree (a std of 0 B on every deterministic byte count would only be noise; "agree"
    allows floating-point rounding, e.g. in a ratio of FLOPs that every seed computes alike)."""
    mean, std = ms
    if not np.isfinite(mean):
        return "n/a"
    agree = not np.isfinite(std) or std <= 1e-9 * max(abs(mean), 1e-30)
    return fmt(mean) if agree else f"{fmt(mean)} {pm} {fmt(std)}"


def render_table(header, body, markdown):
    """Aligned plain text (the first two columns, label and method, left-aligned; the numbers
    right-aligned), or a Markdown table."""
    left = 2
    if markdown:
        align = [":--" if i < left else "--:" for i in range(len(header))]
        return "\n".join("| " + " | ".join(c) + " |" for c in [header, align] + body)
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < left else c.rjust(w)
                       for i, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(rows, vocab, networks, baseline, threshold=None, markdown=False):
    """The comparison table of the one-table report (language models) as aligned plain text, or
    as a Markdown table."""
    pm = "±" if markdown else "+-"
    samples = words(vocab.samples)
    header = ["label", "method", "ranks", "seeds", f"final eval {vocab.eval}",
              f"final train {vocab.train}", samples, f"{samples}/s", "train FLOPs", "bytes/rank",
              "bytes/rank/sync", "compression"]
    header += [f"comm @{n}" for n in networks] + ["train time", "wall time"]
    if threshold is not None:
        header += [f"{samples} to {threshold:g}", f"bytes to {threshold:g}", f"time to {threshold:g}"]
    base_bytes = baseline["comm_bytes_per_rank"][0]
    body = []
    for r in rows:
        sent = r["comm_bytes_per_rank"][0]
        ratio = base_bytes / sent if sent > 0 and base_bytes > 0 else np.nan
        cells = [r["label"] + ("*" if r["unfinished"] else ""), r["method"], r["ranks"], str(r["n"]),
                 fmt_loss(r[f"final_eval_{vocab.eval}"], pm), fmt_loss(r[f"final_train_{vocab.train}"], pm),
                 fmt_count(r[f"{vocab.samples}_total"][0]), fmt_count(r[f"{vocab.samples}_per_s"][0]),
                 fmt_count(r["train_flops"][0]),
                 fmt_bytes(sent), fmt_bytes(r["bytes_per_sync"][0]), fmt_ratio(ratio)]
        cells += [fmt_seconds(r[f"net_time_s_{n}"][0]) for n in networks]
        cells += [fmt_seconds(r["train_time_s"][0]), fmt_seconds(r["wall_time_s"][0])]
        if threshold is not None:
            t = r["to_threshold"]
            tag = f" ({r['reached']}/{r['n']})" if r["reached"] < r["n"] else ""
            cells += ["not reached"] * 3 if t is None else \
                [fmt_count(t[0][0]) + tag, fmt_bytes(t[1][0]) + tag, fmt_seconds(t[2][0]) + tag]
        body.append(cells)
    return render_table(header, body, markdown)


def relative_difference(a, b):
    return abs(a - b) / max(abs(a), abs(b)) if max(abs(a), abs(b)) > 0 else 0.0


def est_dense_pairs(rows):
    """Each row that trained a subnetwork (every trace of its label has steps/flops_dense) with the
    dense row it is compared against: no trace with steps/flops_dense, the same world size, and
    train FLOPs equal to the subnetwork row's dense-equivalent FLOPs (relative difference <= 1e-9:
    it did the same work in full). Of several such rows, the one whose runs synchronised as often
    (steps that sent bytes) is taken, then the first; a row without any gets no comparison."""
    pairs = []
    for r in rows:
        if r["flops_dense_runs"] == 0 or r["flops_dense_runs"] < r["n"]:
            continue
        own = r["train_flops_dense"][0]
        partners = [d for d in rows if d["flops_dense_runs"] == 0 and d["ranks"] == r["ranks"]
                    and relative_difference(d["train_flops"][0], own) <= 1e-9]
        if not partners:
            warn(f"label '{r['label']}' trained a subnetwork (steps/flops_dense), but no label without "
                 f"steps/flops_dense with {r['ranks']} rank(s) trained its dense-equivalent "
                 f"{fmt_count(own)} FLOPs; it gets no EST vs dense comparison")
            continue
        same_syncs = [d for d in partners if d["syncs"][0] == r["syncs"][0]]
        best = same_syncs or partners
        dense = best[0]
        if len(best) > 1:
            warn(f"label '{r['label']}': the labels " + ", ".join(f"'{d['label']}'" for d in best)
                 + f" each did its work in full with {r['ranks']} rank(s)"
                 + (" and synchronised as often" if same_syncs else
                    ", none synchronised as often (steps that sent bytes)")
                 + f"; comparing with the first, '{dense['label']}'")
        pairs.append((r, dense))
    return pairs


def est_comparison(runs, vocab, est, dense):
    """The numbers of one EST vs dense row. Seeds both labels ran are compared pairwise (mean +- std
    over the pairs, other seeds left out); labels without a common seed are compared through
    their means, the eval-metric difference's spread then being sqrt(std_est^2 + std_dense^2)."""
    est_runs = {m["seed"]: m for m in runs if m["label"] == est["label"]}
    dense_runs = {m["seed"]: m for m in runs if m["label"] == dense["label"]}
    common = sorted(set(est_runs) & set(dense_runs))

    def saving(e, d):
        return 1.0 - e / d if d > 0 else np.nan

    loss = f"final_eval_{vocab.eval}"
    if common:
        pairs = [(est_runs[s], dense_runs[s]) for s in common]
        left_out = len(est_runs) + len(dense_runs) - 2 * len(common)
        return {"seeds": str(len(common)) + (f" ({left_out} unpaired run(s) left out)" if left_out else ""),
                "flops": mean_std([saving(e["train_flops"], d["train_flops"]) for e, d in pairs]),
                "time": mean_std([saving(e["train_time_s"], d["train_time_s"]) for e, d in pairs]),
                "est_loss": mean_std([e[loss] for e, _ in pairs]),
                "dense_loss": mean_std([d[loss] for _, d in pairs]),
                "diff": mean_std([e[loss] - d[loss] for e, d in pairs])}
    return {"seeds": f"{est['n']} vs {dense['n']} (unpaired)",
            "flops": (saving(est["train_flops"][0], dense["train_flops"][0]), np.nan),
            "time": (saving(est["train_time_s"][0], dense["train_time_s"][0]), np.nan),
            "est_loss": est[loss], "dense_loss": dense[loss],
            "diff": (est[loss][0] - dense[loss][0], np.hypot(est[loss][1], dense[loss][1]))}


def format_est_table(runs, vocab, pairs, markdown=False):
    """The EST vs dense table as aligned plain text, or as a Markdown table."""
    pm = "±" if markdown else "+-"
    minus = "−" if markdown else "-"
    header = ["EST label", "dense label", "ranks", "seeds", "FLOPs saving", "train-time saving",
              f"final eval {vocab.eval} EST", f"final eval {vocab.eval} dense",
              f"{vocab.eval} EST {minus} dense"]

    def percent(x):
        return f"{100 * x:.1f}%"

    def signed(ms):
        mean, std = ms
        if not np.isfinite(mean):
            return "n/a"
        return f"{mean:+.4f} {pm} {std:.4f}" if np.isfinite(std) else f"{mean:+.4f}"

    body = []
    for est, dense in pairs:
        c = est_comparison(runs, vocab, est, dense)
        body.append([est["label"] + ("*" if est["unfinished"] else ""),
                     dense["label"] + ("*" if dense["unfinished"] else ""), est["ranks"], c["seeds"],
                     fmt_mean_std(c["flops"], percent, pm), fmt_mean_std(c["time"], percent, pm),
                     fmt_loss(c["est_loss"], pm), fmt_loss(c["dense_loss"], pm), signed(c["diff"])])
    return render_table(header, body, markdown)


def fmt_metric(vocab):
    """The format of the eval metric in the grouped tables: returns with one decimal, other
    metrics (accuracy, a fraction) with four."""
    if vocab.eval == "return":
        return fmt_return
    return lambda x: f"{x:.4f}" if np.isfinite(x) else "n/a"


def has_start(rows):
    """Whether any row has an evaluation at step 0 (eval.at_start): the base column is shown."""
    return any(np.isfinite(r["start_eval"][0]) for r in rows)


def format_group_table(rows, vocab, threshold=None, markdown=False):
    """The comparison table of one group (an RL environment, an RLVR task) as aligned plain text,
    or as a Markdown table. Columns: label, method, ranks, seeds, base <eval> (where a trace has an
    eval/ row at step 0), final eval <eval>, the threshold's three (with a threshold), the samples
    taken (where the grouping has totals), samples/s, bytes/rank, wall time."""
    pm = "±" if markdown else "+-"
    samples = words(vocab.samples)
    metric = fmt_metric(vocab)
    start, totals = has_start(rows), grouping(vocab).totals
    header = ["label", "method", "ranks", "seeds"]
    header += [f"base {vocab.eval}"] if start else []
    header += [f"final eval {vocab.eval}"]
    if threshold is not None:
        header += [f"reached {threshold:g}", f"{samples} to {threshold:g}", f"time to {threshold:g}"]
    header += [samples] if totals else []
    header += [f"{samples}/s", "bytes/rank", "wall time"]
    body = []
    for r in rows:
        cells = [r["label"] + ("*" if r["unfinished"] else ""), r["method"], r["ranks"], str(r["n"])]
        if start:
            base = r["start_eval"]  # "—": no seed of the label evaluated at step 0
            cells += [fmt_mean_std(base, metric, pm) if np.isfinite(base[0]) else "—"]
        cells += [fmt_mean_std(r[f"final_eval_{vocab.eval}"], metric, pm)]
        if threshold is not None:
            t = r["to_threshold"]
            cells += [f"{r['reached']}/{r['n']}"]
            cells += ["—", "—"] if t is None else \
                [fmt_mean_std(t[0], fmt_count, pm), fmt_mean_std(t[2], fmt_seconds, pm)]
        if totals:
            cells += [fmt_mean_std(r[f"{vocab.samples}_total"], fmt_count, pm)]
        cells += [fmt_mean_std(r[f"{vocab.samples}_per_s"], fmt_count, pm),
                  fmt_mean_std(r["comm_bytes_per_rank"], fmt_bytes, pm),
                  fmt_mean_std(r["wall_time_s"], fmt_seconds, pm)]
        body.append(cells)
    return render_table(header, body, markdown)


def row_curve(row, x_key):
    """The row's mean curve to plot against x_key."""
    return row["curves"][x_key] if "curves" in row else row["curve"]


def plot_curves(rows, x_key, x_label, y_label, path, log_x=False, threshold=None, title_prefix=""):
    """One line per label (mean over seeds) with the seeds' min-max band; a dashed horizontal
    line at the threshold when one is given."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    drawn = 0
    for r in rows:
        c = row_curve(r, x_key)
        keep = c[x_key] > 0 if log_x else np.ones(len(c[x_key]), bool)  # log axes drop x = 0
        if not keep.any():
            if log_x and len(keep):
                warn(f"label '{r['label']}' sent no bytes; it is left out of {Path(path).name}")
            continue
        x = c[x_key][keep]
        marker = "o" if keep.sum() <= 40 else None
        (line,) = ax.plot(x, c["metric"][keep], marker=marker, ms=3, label=f"{r['label']} (n={r['n']})")
        if r["n"] > 1:
            ax.fill_between(x, c["lo"][keep], c["hi"][keep], color=line.get_color(), alpha=0.2)
        drawn += 1
    if drawn == 0:
        ax.text(0.5, 0.5, "nothing to plot" + (" (no bytes sent: single-rank runs?)" if log_x else ""),
                ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    else:
        if threshold is not None:
            ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.legend(fontsize=8)
        if log_x:
            ax.set_xscale("log")
    if x_key == "time" and drawn:
        times = [row_curve(r, "time")["time"] for r in rows]
        top = max(t.max() for t in times if len(t))
        scale, unit = (3600, "h") if top > 7200 else (60, "min") if top > 300 else (1, "s")
        ax.xaxis.set_major_formatter(lambda v, _pos: f"{v / scale:g}")
        x_label = f"{x_label} ({unit})"
    elif x_key in ("samples", "bytes", "flops") and drawn:
        ax.xaxis.set_major_formatter(EngFormatter(unit="B" if x_key == "bytes" else ""))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(f"{title_prefix}{y_label.split(' (')[0]} vs {x_label.split(' (')[0]}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def choose_curve(runs, vocab, context=""):
    """One metric source for every line: eval/ if all runs evaluated, else the training metric.
    Returns the run's curve key and the y-axis label, which names the source."""
    with_eval = sum(1 for r in runs if len(r["eval_curve"]["metric"]))
    use_eval = with_eval == len(runs)
    if 0 < with_eval < len(runs):
        warn(f"{context}some runs have no eval/ rows; plotting the training {vocab.train} for every run")
    y_label = (f"eval {vocab.eval} (eval/{vocab.eval})" if use_eval else
               f"training {vocab.train} (steps/{vocab.train}; eval/ empty"
               + (" in some runs)" if with_eval else ")"))
    return ("eval_curve" if use_eval else "train_curve"), y_label


def reach_condition(vocab):
    """How a metric reaches a threshold, for notes: '>=' where higher is better, else '<='."""
    return ">=" if vocab.higher_is_better else "<="


def report_one_table(runs, vocab, threshold, out):
    """Language models: one table (and, where the study has them, EST vs dense), report.md and
    four plots of the metric: against samples, bytes sent, wall time and training FLOPs."""
    curve_key, y_label = choose_curve(runs, vocab)
    networks = list(dict.fromkeys(n for r in runs for n in r["networks"]))
    fields = list(summary_fields(vocab)) + ["bytes_per_sync", "train_flops", "train_time_s",
                                            "train_flops_dense", "syncs"] \
        + [f"net_time_s_{n}" for n in networks]
    rows = aggregate(runs, fields, curve_key, threshold)
    for row in rows:  # EST vs dense: a label trained a subnetwork if its traces have flops_dense
        row["flops_dense_runs"] = sum(1 for m in runs
                                      if m["label"] == row["label"] and "train_flops_dense" in m)
    baseline = pick_baseline(rows)
    notes = [f"{len(runs)} run(s), {len(rows)} label(s); mean +- sample std over seeds.",
             f"compression = bytes/rank of '{baseline['label']}' / bytes/rank of the row; "
             "comm @<network> = modelled time of the method's collectives on that preset.",
             "train FLOPs = sum of steps/flops (all ranks); train time = sum of steps/step_time "
             "(rank 0), evaluation left out; wall time includes it."]
    if threshold is not None:
        notes.append(f"'to {threshold:g}': first point with {y_label.split(' (')[0]} "
                     f"{reach_condition(vocab)} threshold, mean over the seeds that reached it "
                     "(k/n when not all did).")
    if any(r["unfinished"] for r in rows):
        notes.append("Labels marked * include runs that did not finish.")

    print(format_table(rows, vocab, networks, baseline, threshold))
    print()
    print("\n".join(notes))

    # EST vs dense: only where the study has a subnetwork label and its dense counterpart.
    est_pairs = est_dense_pairs(rows)
    est_notes = ["FLOPs saving = 1 - train FLOPs(EST) / train FLOPs(dense); train-time saving = "
                 "1 - train time(EST) / train time(dense), train time as above (no evaluation).",
                 f"Seeds both labels ran are compared pairwise: mean +- std over the seed pairs, the "
                 f"{vocab.eval} difference taken per pair. Labels without a common seed: ratios and "
                 "difference of the means, the difference's spread sqrt(std_EST^2 + std_dense^2)."]
    if est_pairs:
        print()
        print("EST vs dense")
        print(format_est_table(runs, vocab, est_pairs))
        print()
        print("\n".join(est_notes))

    out.mkdir(parents=True, exist_ok=True)
    md = format_table(rows, vocab, networks, baseline, threshold, markdown=True)
    text = ("# frugal report\n\n" + md + "\n\n"
            + "\n".join(f"- {n}".replace("+-", "±") for n in notes) + "\n")
    if est_pairs:
        text += ("\n## EST vs dense\n\n" + format_est_table(runs, vocab, est_pairs, markdown=True)
                 + "\n\n" + "\n".join(f"- {n}".replace("+-", "±").replace(" - ", " − ")
                                       for n in est_notes) + "\n")
    (out / "report.md").write_text(text)
    # File names <eval metric>_vs_<axis>.png: loss_vs_tokens.png, loss_vs_bytes.png, ...
    axes = (vocab.samples, "bytes", "time", "flops")
    name = {axis: f"{vocab.eval}_vs_{axis}.png" for axis in axes}
    plot_curves(rows, "samples", f"{words(vocab.samples)} (all ranks)", y_label, out / name[vocab.samples])
    plot_curves(rows, "bytes", "cumulative bytes sent per rank (steps/comm_bytes)", y_label,
                out / name["bytes"], log_x=True)
    # The x axes say which clock and which FLOPs: wall time counts evaluation, the FLOPs do not.
    plot_curves(rows, "time", "wall time, evaluation included", y_label, out / name["time"])
    plot_curves(rows, "flops", "training FLOPs (all ranks, cumulative steps/flops)", y_label,
                out / name["flops"])
    print(f"wrote {out / 'report.md'} and {vocab.eval}_vs_{{{','.join(axes)}}}.png", file=sys.stderr)


def report_per_group(runs, vocab, threshold_override, out, skipped=()):
    """RL (per environment) and RLVR (per task): one table, one report.md section and one plot
    per axis of the grouping (metric against samples and wall time; RLVR also against steps) per
    group. skipped: runs left out of the report (RLVR's warm starts), named in report.md."""
    group = grouping(vocab)
    by_group = {}
    for run in runs:
        by_group.setdefault(run["group"], []).append(run)
    out.mkdir(parents=True, exist_ok=True)
    samples = words(vocab.samples)
    # Per plotted axis: the x label of the plot, the name in its file and in report.md's caption.
    axes = {"step": ("step", "step", "step"),
            "samples": (f"{samples} (all ranks)", vocab.samples, samples),
            "time": ("wall time", "time", "wall time")}
    sections, plots = [], []
    for name, group_runs in by_group.items():
        curve_key, y_label = choose_curve(group_runs, vocab, context=f"{name}: ")
        threshold, source = None, None
        if group.thresholds and threshold_override is not None:
            threshold, source = threshold_override, "--threshold-return"
        elif group.thresholds:
            threshold = DEFAULT_RETURN_THRESHOLDS.get(name)
            source = f"default for {name}; --threshold-return sets another"
        rows = aggregate(group_runs, list(summary_fields(vocab)) + ["start_eval"], curve_key,
                         threshold, plot_axes=group.axes)
        notes = [f"{len(group_runs)} run(s), {len(rows)} label(s); mean +- sample std over seeds "
                 "(the std is left out where there is one seed or the seeds agree)."]
        if has_start(rows):
            notes.append(f"base {vocab.eval} = eval/{vocab.eval} at step 0 (eval.at_start: the "
                         "starting model, before any update), mean over the seeds that have it "
                         "(— if none).")
        if threshold is not None:
            notes.append(f"Threshold: {y_label.split(' (')[0]} {reach_condition(vocab)} {threshold:g} "
                         f"({source}). reached = seeds that got there; {samples} to, time to (wall "
                         "time) = at each such seed's first point that did, mean over those seeds "
                         "(— if none).")
        elif group.thresholds:
            notes.append(f"No default {vocab.eval} threshold for {name}; --threshold-return X adds the "
                         f"{samples} and wall time needed to reach it.")
        if group.totals:
            notes.append(f"{samples} = steps/{vocab.samples} at the last step (all ranks); "
                         f"{samples}/s = that over the wall time.")
        notes.append("bytes/rank = bytes a rank put on the wire (method traffic), mean over ranks.")
        if any(r["unfinished"] for r in rows):
            notes.append("Labels marked * include runs that did not finish.")

        # Several groups in one folder: the file names say which one a plot shows.
        suffix = f"_{name}" if len(by_group) > 1 else ""
        files = {axis: f"{vocab.eval}_vs_{axes[axis][1]}{suffix}.png" for axis in group.axes}
        for axis in group.axes:
            plot_curves(rows, axis, axes[axis][0], y_label, out / files[axis],
                        threshold=threshold, title_prefix=f"{name}: ")
        plots += files.values()

        print(f"== {name} ==")
        print(format_group_table(rows, vocab, threshold))
        print()
        print("\n".join(notes))
        print()
        md = format_group_table(rows, vocab, threshold, markdown=True)
        sections.append(f"## {name}\n\n{md}\n\n"
                        + "\n".join(f"- {n}".replace("+-", "±") for n in notes) + "\n\n"
                        + "".join(f"![{y_label.split(' (')[0]} vs {axes[axis][2]}]({files[axis]})\n"
                                  for axis in group.axes))
    head = "# frugal report\n\n"
    if skipped:
        head += (f"Not reported: {len(skipped)} trace(s) of another vocabulary, the supervised warm "
                 f"starts ({skipped[0]['vocab'].describe()}): "
                 + ", ".join(f"`{r['path']}`" for r in skipped) + ".\n\n")
    (out / "report.md").write_text(head + "\n".join(sections))
    print(f"wrote {out / 'report.md'} and {', '.join(plots)}", file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_TRACE")
    ap.add_argument("--out", help="folder for report.md and the plots (default: the first folder given)")
    ap.add_argument("--threshold-loss", type=float, metavar="X",
                    help="language models: add tokens, bytes per rank and wall time needed to reach loss <= X")
    ap.add_argument("--threshold-return", type=float, metavar="X",
                    help="RL: the return to reach, for every environment (default: per environment, "
                         "see the top of report.py)")
    ap.add_argument("--include-unfinished", action="store_true",
                    help="also report runs whose status is running, stopped or failed")
    args = ap.parse_args(argv)

    runs = []
    for path in find_traces(args.paths):
        run = load_run(path)
        if run["status"] == "finished" or args.include_unfinished:
            runs.append(run)
        else:
            warn(f"{path}: status '{run['status']}', skipped (use --include-unfinished)")
    if not runs:
        die("no finished traces to report (use --include-unfinished to see the others)")

    vocab, runs, skipped = one_vocabulary(runs)
    # --threshold-return is the per-environment report's (thresholds differ by environment),
    # --threshold-loss the one-table report's; RLVR's per-task report takes neither.
    group = grouping(vocab)
    thresholds = bool(group and group.thresholds)
    wrong_option = "--threshold-return" if not thresholds and args.threshold_return is not None \
        else "--threshold-loss" if group and args.threshold_loss is not None else None
    if wrong_option:
        die(f"{wrong_option} does not apply to {vocab.kind} traces ({vocab.describe()})")

    first = Path(args.paths[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    if group:
        report_per_group(runs, vocab, args.threshold_return, out, skipped)
    else:
        report_one_table(runs, vocab, args.threshold_loss, out)


if __name__ == "__main__":
    main()
