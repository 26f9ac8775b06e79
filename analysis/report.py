#!/usr/bin/env python3
"""Compare frugal runs: one table row per label (mean +- std over seeds) and plots of loss or return.

    python analysis/report.py RUN_DIR_OR_TRACE... [--out DIR] [--threshold-loss X]
                              [--threshold-return X] [--include-unfinished]

Finds every trace.h5 under the given folders (the format is src/trace/SCHEMA.md), prints an
aligned table, writes it as Markdown to OUT/report.md, and draws plots into OUT (default: the
first folder given). A report covers language-model traces or RL traces, never both: the root
attribute sample_unit tells them apart ("tokens" or "env_steps"; absent means "tokens").

Language models: one table, and loss_vs_tokens.png, loss_vs_bytes.png, loss_vs_time.png (wall
time, evaluation included) and loss_vs_flops.png (cumulative training FLOPs, steps/flops). The
table's train FLOPs and train time (sum of steps/step_time) leave evaluation out; wall time does not.
--threshold-loss X adds the tokens, bytes per rank and wall time needed to reach loss <= X.
A study with a ddp label and est labels (evolving subnetwork training) of the same world size also
gets an "EST vs dense" table: FLOPs and train-time savings and the final eval loss of both.

Reinforcement learning: returns of different environments are not comparable, so the traces are
grouped by environment (env.name in their config): one table, one section of report.md and two
plots per environment, return_vs_env_steps.png and return_vs_time.png (the environment's name is
appended, e.g. return_vs_env_steps_CartPole-v1.png, when the traces cover several). The table
gives the env steps and wall time to the first evaluation whose return is >= a threshold.
Seeds of one label are averaged on the plotted axis (env steps, wall time): where their x values
differ (evolution strategies stop at different steps), each seed's curve is interpolated onto a
common grid over the x range every seed covers.
--threshold-return X sets it for every environment; the defaults are
    CartPole-v1   475   Gymnasium's reward_threshold
    Acrobot-v1   -100   Gymnasium's reward_threshold
    Pendulum-v1  -200   our choice (Gymnasium gives none): a random policy scores about -1200,
                        one that swings up and holds the pendulum from most starts about -150..-200
and an environment without a default gets no threshold columns.

Exit status 2 on a missing folder, no traces, a trace that breaks the schema, language-model and
RL traces given together, or a threshold option for the other kind of trace.
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
    train_metric and eval_metric). They name the steps/ and eval/ columns and the summary
    attributes: <samples>_total, <samples>_per_s, final_train_<train>, final_eval_<eval>."""
    kind: str  # for messages
    samples: str
    train: str
    eval: str
    higher_is_better: bool


LANGUAGE_MODEL = Vocabulary("language-model", "tokens", "loss", "loss", higher_is_better=False)
RL = Vocabulary("RL", "env_steps", "return", "return", higher_is_better=True)

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
    """The trace's vocabulary; traces written before the three attributes existed are LM traces."""
    found = tuple(str(attr(name, default)) for name, default in
                  (("sample_unit", "tokens"), ("train_metric", "loss"), ("eval_metric", "loss")))
    for vocab in (LANGUAGE_MODEL, RL):
        if found == (vocab.samples, vocab.train, vocab.eval):
            return vocab
    die(f"{path}: unknown vocabulary sample_unit='{found[0]}', train_metric='{found[1]}', "
        f"eval_metric='{found[2]}' (see src/trace/SCHEMA.md)")


def read_env_name(path, config_text):
    """env.name from the trace's configuration (TOML)."""
    try:
        config = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as e:
        die(f"{path}: root attribute 'config' is not valid TOML ({e})")
    name = config.get("env", {}).get("name")
    if not name:
        die(f"{path}: an RL trace whose config has no env.name")
    return str(name)


def load_run(path):
    """Read one trace into a dict: identity, summary numbers (keyed by their attribute names) and
    the curves of its metric (loss or return)."""
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
               "env": read_env_name(path, str(attr("config"))) if vocab is RL else None}
        run["networks"] = [n.strip() for n in str(attr("networks")).split(",") if n.strip()]
        # Language models also need the compute columns (train FLOPs and time, loss_vs_flops.png);
        # RL reports use neither, so RL traces are not held to them.
        compute = ("flops", "step_time") if vocab is LANGUAGE_MODEL else ()
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
        # EST traces say what the dense model would have cost; the EST section checks with it
        # that the dense row it compares against trained the same model.
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

    # Curves: "samples" is tokens or env steps, "metric" the loss or return. Cumulative bytes and
    # wall time are read at the step each evaluation followed (an evaluation before the first
    # step reads 0).
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


def one_vocabulary(runs):
    """The vocabulary all runs share; refuses language-model and RL traces in one report."""
    by_vocab = {}
    for run in runs:
        by_vocab.setdefault(run["vocab"], []).append(run)
    if len(by_vocab) > 1:
        kinds = "; ".join(f"{len(rs)} {v.kind} trace(s) (sample_unit '{v.samples}'), e.g. {rs[0]['path']}"
                          for v, rs in by_vocab.items())
        die(f"cannot report language-model and RL traces together (losses and returns are not "
            f"comparable): {kinds}. Give report.py the folders of one kind.")
    return runs[0]["vocab"]


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
    # Every x axis the curves have (language models add flops to samples, bytes and time).
    stack = {k: np.array([c[k][r] for c, r in zip(curves, rows)]) for k in curves[0] if k != "step"}
    out = {k: v.mean(axis=0) for k, v in stack.items()}
    out["lo"], out["hi"] = stack["metric"].min(axis=0), stack["metric"].max(axis=0)
    return out


CURVE_GRID_POINTS = 100  # points of the common x grid when seeds' x values differ (RL plots)


def mean_curve_on(label, curves, x_key):
    """Average the seeds' curves on the plotted axis x_key (RL: env steps, wall time). Seeds with
    identical x values are averaged point by point; otherwise each seed's metric is interpolated
    (np.interp, no extrapolation) onto CURVE_GRID_POINTS points from the largest first x to the
    smallest last x (seeds that share no x range fall back to mean_curve). Returns x_key, mean
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
    """(samples, bytes, time) at the first point whose metric reaches the threshold (loss <= it,
    return >= it), or None."""
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


def format_lm_table(rows, networks, baseline, threshold=None, markdown=False):
    """The language-model comparison table as aligned plain text, or as a Markdown table."""
    pm = "±" if markdown else "+-"
    header = ["label", "method", "ranks", "seeds", "final eval loss", "final train loss",
              "tokens", "tokens/s", "train FLOPs", "bytes/rank", "bytes/rank/sync", "compression"]
    header += [f"comm @{n}" for n in networks] + ["train time", "wall time"]
    if threshold is not None:
        header += [f"tokens to {threshold:g}", f"bytes to {threshold:g}", f"time to {threshold:g}"]
    base_bytes = baseline["comm_bytes_per_rank"][0]
    body = []
    for r in rows:
        sent = r["comm_bytes_per_rank"][0]
        ratio = base_bytes / sent if sent > 0 and base_bytes > 0 else np.nan
        cells = [r["label"] + ("*" if r["unfinished"] else ""), r["method"], r["ranks"], str(r["n"]),
                 fmt_loss(r["final_eval_loss"], pm), fmt_loss(r["final_train_loss"], pm),
                 fmt_count(r["tokens_total"][0]), fmt_count(r["tokens_per_s"][0]),
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


def est_dense_pairs(runs, rows):
    """Each est row with the ddp row it is compared against: same world size and, where several
    ddp rows qualify, the one that processed as many tokens (the same training budget)."""
    dense_rows = [r for r in rows if r["method"] == "ddp"]
    pairs = []
    for r in rows:
        partners = [d for d in dense_rows if d["ranks"] == r["ranks"]]
        if r["method"] != "est" or not partners:
            continue
        same = [d for d in partners if np.isclose(d["tokens_total"][0], r["tokens_total"][0])]
        dense = (same or partners)[0]
        if not same:
            warn(f"EST label '{r['label']}': no ddp label with {r['ranks']} rank(s) processed as many "
                 f"tokens; comparing with '{dense['label']}' anyway")
        # The EST trace's own dense FLOPs (steps/flops_dense) tell whether the ddp row trained
        # the same model for the same steps; otherwise the FLOPs saving means nothing.
        own = mean_std([m.get("train_flops_dense", np.nan) for m in runs if m["label"] == r["label"]])[0]
        if np.isfinite(own) and not np.isclose(own, dense["train_flops"][0], rtol=0.01):
            warn(f"EST label '{r['label']}': its dense-equivalent FLOPs (steps/flops_dense, "
                 f"{fmt_count(own)}) differ from the train FLOPs of '{dense['label']}' "
                 f"({fmt_count(dense['train_flops'][0])}): not the same model or budget?")
        pairs.append((r, dense))
    return pairs


def est_comparison(runs, est, dense):
    """The numbers of one EST vs dense row. Seeds both labels ran are compared pairwise (mean +- std
    over the pairs, other seeds left out); labels without a common seed are compared through
    their means, the loss difference's spread then being sqrt(std_est^2 + std_dense^2)."""
    est_runs = {m["seed"]: m for m in runs if m["label"] == est["label"]}
    dense_runs = {m["seed"]: m for m in runs if m["label"] == dense["label"]}
    common = sorted(set(est_runs) & set(dense_runs))

    def saving(e, d):
        return 1.0 - e / d if d > 0 else np.nan

    loss = "final_eval_loss"
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


def format_est_table(runs, pairs, markdown=False):
    """The EST vs dense table as aligned plain text, or as a Markdown table."""
    pm = "±" if markdown else "+-"
    minus = "−" if markdown else "-"
    header = ["EST label", "dense label", "ranks", "seeds", "FLOPs saving", "train-time saving",
              "final eval loss EST", "final eval loss dense", f"loss EST {minus} dense"]

    def percent(x):
        return f"{100 * x:.1f}%"

    def signed(ms):
        mean, std = ms
        if not np.isfinite(mean):
            return "n/a"
        return f"{mean:+.4f} {pm} {std:.4f}" if np.isfinite(std) else f"{mean:+.4f}"

    body = []
    for est, dense in pairs:
        c = est_comparison(runs, est, dense)
        body.append([est["label"] + ("*" if est["unfinished"] else ""),
                     dense["label"] + ("*" if dense["unfinished"] else ""), est["ranks"], c["seeds"],
                     fmt_mean_std(c["flops"], percent, pm), fmt_mean_std(c["time"], percent, pm),
                     fmt_loss(c["est_loss"], pm), fmt_loss(c["dense_loss"], pm), signed(c["diff"])])
    return render_table(header, body, markdown)


def format_rl_table(rows, threshold=None, markdown=False):
    """The RL comparison table (one environment) as aligned plain text, or as a Markdown table."""
    pm = "±" if markdown else "+-"
    header = ["label", "method", "ranks", "seeds", "final eval return"]
    if threshold is not None:
        header += [f"reached {threshold:g}", f"env steps to {threshold:g}", f"time to {threshold:g}"]
    header += ["env steps/s", "bytes/rank", "wall time"]
    body = []
    for r in rows:
        cells = [r["label"] + ("*" if r["unfinished"] else ""), r["method"], r["ranks"], str(r["n"]),
                 fmt_mean_std(r["final_eval_return"], fmt_return, pm)]
        if threshold is not None:
            t = r["to_threshold"]
            cells += [f"{r['reached']}/{r['n']}"]
            cells += ["—", "—"] if t is None else \
                [fmt_mean_std(t[0], fmt_count, pm), fmt_mean_std(t[2], fmt_seconds, pm)]
        cells += [fmt_mean_std(r["env_steps_per_s"], fmt_count, pm),
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


def report_language_models(runs, threshold, out):
    curve_key, y_label = choose_curve(runs, LANGUAGE_MODEL)
    networks = list(dict.fromkeys(n for r in runs for n in r["networks"]))
    fields = list(summary_fields(LANGUAGE_MODEL)) + ["bytes_per_sync", "train_flops", "train_time_s"] \
        + [f"net_time_s_{n}" for n in networks]
    rows = aggregate(runs, fields, curve_key, threshold)
    baseline = pick_baseline(rows)
    notes = [f"{len(runs)} run(s), {len(rows)} label(s); mean +- sample std over seeds.",
             f"compression = bytes/rank of '{baseline['label']}' / bytes/rank of the row; "
             "comm @<network> = modelled time of the method's collectives on that preset.",
             "train FLOPs = sum of steps/flops (all ranks); train time = sum of steps/step_time "
             "(rank 0), evaluation left out; wall time includes it."]
    if threshold is not None:
        notes.append(f"'to {threshold:g}': first point with {y_label.split(' (')[0]} "
                     "<= threshold, mean over the seeds that reached it (k/n when not all did).")
    if any(r["unfinished"] for r in rows):
        notes.append("Labels marked * include runs that did not finish.")

    print(format_lm_table(rows, networks, baseline, threshold))
    print()
    print("\n".join(notes))

    # EST vs dense: only where the study has both (a study without a ddp row gets no section).
    est_pairs = est_dense_pairs(runs, rows)
    est_notes = ["FLOPs saving = 1 - train FLOPs(EST) / train FLOPs(dense); train-time saving = "
                 "1 - train time(EST) / train time(dense), train time as above (no evaluation).",
                 "Seeds both labels ran are compared pairwise: mean +- std over the seed pairs, the "
                 "loss difference taken per pair. Labels without a common seed: ratios and difference "
                 "of the means, the difference's spread sqrt(std_EST^2 + std_dense^2)."]
    if est_pairs:
        print()
        print("EST vs dense")
        print(format_est_table(runs, est_pairs))
        print()
        print("\n".join(est_notes))

    out.mkdir(parents=True, exist_ok=True)
    md = format_lm_table(rows, networks, baseline, threshold, markdown=True)
    text = ("# frugal report\n\n" + md + "\n\n"
            + "\n".join(f"- {n}".replace("+-", "±") for n in notes) + "\n")
    if est_pairs:
        text += ("\n## EST vs dense\n\n" + format_est_table(runs, est_pairs, markdown=True) + "\n\n"
                 + "\n".join(f"- {n}".replace("+-", "±").replace(" - ", " − ") for n in est_notes) + "\n")
    (out / "report.md").write_text(text)
    plot_curves(rows, "samples", "tokens (all ranks)", y_label, out / "loss_vs_tokens.png")
    plot_curves(rows, "bytes", "cumulative bytes sent per rank (steps/comm_bytes)", y_label,
                out / "loss_vs_bytes.png", log_x=True)
    # The x axes say which clock and which FLOPs: wall time counts evaluation, the FLOPs do not.
    plot_curves(rows, "time", "wall time, evaluation included", y_label, out / "loss_vs_time.png")
    plot_curves(rows, "flops", "training FLOPs (all ranks, cumulative steps/flops)", y_label,
                out / "loss_vs_flops.png")
    print(f"wrote {out / 'report.md'} and loss_vs_{{tokens,bytes,time,flops}}.png", file=sys.stderr)


def report_rl(runs, threshold_override, out):
    """One table, one report.md section and two plots per environment."""
    by_env = {}
    for run in runs:
        by_env.setdefault(run["env"], []).append(run)
    out.mkdir(parents=True, exist_ok=True)
    sections, plots = [], []
    for env, env_runs in by_env.items():
        curve_key, y_label = choose_curve(env_runs, RL, context=f"{env}: ")
        if threshold_override is not None:
            threshold, source = threshold_override, "--threshold-return"
        else:
            threshold = DEFAULT_RETURN_THRESHOLDS.get(env)
            source = f"default for {env}; --threshold-return sets another"
        rows = aggregate(env_runs, summary_fields(RL), curve_key, threshold,
                         plot_axes=("samples", "time"))
        notes = [f"{len(env_runs)} run(s), {len(rows)} label(s); mean +- sample std over seeds "
                 "(the std is left out where there is one seed or the seeds agree)."]
        if threshold is not None:
            notes.append(f"Threshold: {y_label.split(' (')[0]} >= {threshold:g} ({source}). "
                         "reached = seeds that got there; env steps to, time to (wall time) = at "
                         "each such seed's first point that did, mean over those seeds (— if none).")
        else:
            notes.append(f"No default return threshold for {env}; --threshold-return X adds the "
                         "env steps and wall time needed to reach it.")
        notes.append("bytes/rank = bytes a rank put on the wire (method traffic), mean over ranks.")
        if any(r["unfinished"] for r in rows):
            notes.append("Labels marked * include runs that did not finish.")

        # Several environments in one folder: the file names say which one a plot shows.
        suffix = f"_{env}" if len(by_env) > 1 else ""
        vs_steps, vs_time = f"return_vs_env_steps{suffix}.png", f"return_vs_time{suffix}.png"
        plot_curves(rows, "samples", "env steps (all ranks)", y_label, out / vs_steps,
                    threshold=threshold, title_prefix=f"{env}: ")
        plot_curves(rows, "time", "wall time", y_label, out / vs_time,
                    threshold=threshold, title_prefix=f"{env}: ")
        plots += [vs_steps, vs_time]

        print(f"== {env} ==")
        print(format_rl_table(rows, threshold))
        print()
        print("\n".join(notes))
        print()
        md = format_rl_table(rows, threshold, markdown=True)
        sections.append(f"## {env}\n\n{md}\n\n"
                        + "\n".join(f"- {n}".replace("+-", "±") for n in notes) + "\n\n"
                        + f"![{y_label.split(' (')[0]} vs env steps]({vs_steps})\n"
                        + f"![{y_label.split(' (')[0]} vs wall time]({vs_time})\n")
    (out / "report.md").write_text("# frugal report\n\n" + "\n".join(sections))
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

    vocab = one_vocabulary(runs)
    wrong_option = "--threshold-return" if vocab is LANGUAGE_MODEL and args.threshold_return is not None \
        else "--threshold-loss" if vocab is RL and args.threshold_loss is not None else None
    if wrong_option:
        die(f"{wrong_option} does not apply to {vocab.kind} traces")

    first = Path(args.paths[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    if vocab is LANGUAGE_MODEL:
        report_language_models(runs, args.threshold_loss, out)
    else:
        report_rl(runs, args.threshold_return, out)


if __name__ == "__main__":
    main()
