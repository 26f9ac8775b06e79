#!/usr/bin/env python3
"""Report of the NExt study (configs/next/study.toml; methods: shared/specs/methods.md section 4).

    python analysis/next_report.py RUNS_DIR_OR_TRACE... [--out DIR]

Finds every trace.h5 under the given folders (format: src/trace/SCHEMA.md; default --out:
<first folder>/report) and links the three kinds of trace the study writes through their
configurations (root attribute `config`):
  plain          method grpo, grpo.trajectory_every > 0 and rlvr.first_step = 0: GRPO-LoRA from the
                 SFT base, evaluated every c steps from step 0 (the base score) and writing
                 <run dir>/trajectory.h5;
  extrapolation  method extrapolate, extrapolate.trajectory = <plain run dir>/trajectory.h5: one
                 extrapolator (extrapolate.method next | alpharl | rl_extra | relex) fitted to the
                 plain run's checkpoints up to extrapolate.observed_step. eval/ step 0 is the last
                 observed checkpoint W_K, step 1 the extrapolated model;
  continuation   method grpo, model.init_from = <extrapolation run dir>/model.bin and
                 rlvr.first_step > 0: GRPO-LoRA from the extrapolated model; its step s is RL step
                 rlvr.first_step + s (60 + s in the study).
Links are run folders: a path in a config is matched to the folder of a trace found here (as
resolved from the current directory, else by the folder's name when exactly one trace folder has
it). Everything is grouped by task (task.name) and paired by seed (run.seed).

Per task, printed and written to OUT/report.md:
  1. the main table, one row per method: GRPO-LoRA for its full run (160 steps), GRPO-LoRA read
     off the same runs' eval curve at the extrapolated chains' real-step budget (observed step +
     continuation steps: 60 + 40 = 100), and one row per extrapolator (NExt, AlphaRL, RL-Extra,
     RELEX): final eval accuracy (mean +- sample std over seeds), real RL steps, accuracy right
     after the extrapolation and of W_K, ICER = real steps / (score - base score) (lower is
     better; "-" where the score is not above the base), the extrapolator's own cost (FLOPs and
     seconds of linear algebra + predictor fit) and the chain's train FLOPs and train time against
     the plain run's (what is summed is stated in the notes);
  2. NExt's alpha sweep (next.alpha_sweep: accuracy after extrapolation, no further RL, for each
     swept alpha; W_K is alpha = 0) and the sign-alignment ablation (next.align_signs = false
     against the aligned runs of the same alpha, k and observed step);
  3. the plot accuracy_vs_rl_steps_<task>.png: eval accuracy against real RL steps, the plain curve
     and, per extrapolator, a dashed jump at the observed step from W_K to the extrapolated model
     followed by its continuation (means over seeds, shaded +- one std);
  4. "Which claim the numbers support": generated from the numbers, per method: its final accuracy
     at the budget against plain GRPO-LoRA at its full length, within one pooled seed-std
     (sqrt of the mean of the two variances) or clearly below or above; whether NExt beats the
     best linear method by more than that spread; and, first and prominently, a caveat when plain
     GRPO-LoRA itself gained no more than its seed std over the base score.

Pieces that are missing are skipped with a warning: traces whose status is not "finished", an
extrapolation whose plain run or a continuation whose extrapolation has no finished trace here,
an extrapolation not continued, a task without a plain run. The supervised warm starts (method
sft), should the folder hold them, are skipped with a warning as well. Exit status 2 (with a
message naming the file) on a trace that is not one of the kinds above or that breaks the schema,
and when there is nothing to report: no traces, or no finished plain run.
"""
import argparse
import os
import sys
import tomllib
from pathlib import Path

# A live run keeps its trace open; reading it needs HDF5's file locking off (before h5py loads).
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402  (analysis/report.py: the trace reader, formats and tables)
from report import (die, warn, find_traces, load_run, plain, mean_std, fmt_mean_std,  # noqa: E402
                    render_table, fmt_count, fmt_seconds, fmt_ratio)

import h5py  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Display names of extrapolate.method, in the order the tables list them; all but NExt are linear.
EXTRAPOLATORS = {"next": "NExt", "alpharl": "AlphaRL", "rl_extra": "RL-Extra", "relex": "RELEX"}
LINEAR = ("alpharl", "rl_extra", "relex")
PLAIN_NAME = "GRPO-LoRA"
SWEEP = "sweep_accuracy_alpha_"  # steps/ columns of NExt's alpha sweep, one per alpha

# Accuracy in the tables: four decimals, as report.py's RLVR tables write it.
fmt_acc = report.fmt_metric(report.Vocabulary("RLVR", "generated_tokens", "reward", "accuracy", True))


NOTICES = []  # the warnings of this run, repeated at the end of report.md


def notice(message):
    """A warning (stderr) that report.md repeats: what was skipped or approximated."""
    warn(message)
    NOTICES.append(message)


def fmt_diff(ms, pm):
    """'mean +- std' of an accuracy difference: the mean signed, the std left out as fmt_mean_std
    leaves it out (one seed, agreeing seeds)."""
    mean, std = ms
    if not np.isfinite(mean):
        return "n/a"
    return fmt_mean_std(ms, lambda x: f"{x:.4f}", pm).replace(f"{mean:.4f}", f"{mean:+.4f}", 1)


def fmt_steps(x):
    return f"{x:.0f}" if np.isfinite(x) else "n/a"


# ----------------------------------------------------------------------------------------------
# Reading and classifying the traces


def config_value(config, key, default=None):
    """The value of "section.name" in a parsed configuration, or default."""
    section, _, name = key.partition(".")
    return config.get(section, {}).get(name, default)


def first_look(path):
    """The root attributes and the parsed configuration of a trace (no tables read)."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        die(f"{path}: cannot open as HDF5 ({e})")
    with f:
        attrs = {k: plain(v) for k, v in f.attrs.items()}
    for name in ("method", "status", "config", "seed", "run_name"):
        if name not in attrs:
            die(f"{path}: missing root attribute '{name}' (see src/trace/SCHEMA.md)")
    try:
        config = tomllib.loads(str(attrs["config"]))
    except tomllib.TOMLDecodeError as e:
        die(f"{path}: root attribute 'config' is not valid TOML ({e})")
    return attrs, config


def classify(path, method, config):
    """The trace's role in the study: 'plain', 'extrapolation', 'continuation' or 'warm start'
    (method sft); dies, naming the file, on anything else."""
    if method == "sft":
        return "warm start"
    if method == "extrapolate":
        if not config_value(config, "extrapolate.trajectory"):
            die(f"{path}: an extrapolate trace without extrapolate.trajectory in its config")
        if config_value(config, "extrapolate.method") not in EXTRAPOLATORS:
            die(f"{path}: extrapolate.method '{config_value(config, 'extrapolate.method')}' is not one of "
                + ", ".join(EXTRAPOLATORS))
        return "extrapolation"
    if method == "grpo":
        first_step = int(config_value(config, "rlvr.first_step", 0))
        every = int(config_value(config, "grpo.trajectory_every", 0))
        if first_step == 0 and every > 0:
            return "plain"
        if first_step > 0 and config_value(config, "model.init_from"):
            return "continuation"
        die(f"{path}: a grpo trace that is neither a plain run of the NExt study (grpo.trajectory_every "
            f"> 0, rlvr.first_step = 0) nor a continuation (model.init_from = <extrapolation run "
            f"dir>/model.bin, rlvr.first_step > 0); it has trajectory_every = {every}, first_step = "
            f"{first_step}, init_from = '{config_value(config, 'model.init_from', '')}'")
    die(f"{path}: method '{method}' is not part of the NExt study (grpo, extrapolate; sft warm starts "
        "are skipped)")


def read_columns(path, group, names, optional=(), prefix=None):
    """Whole columns of steps/ or eval/ as float arrays: a missing required one is an error naming
    the file, a missing optional one None; with prefix, every column whose name starts with it."""
    with h5py.File(path, "r") as f:
        out = {}
        for name in list(names) + list(optional):
            key = f"{group}/{name}"
            if key in f:
                out[name] = np.asarray(f[key][...], dtype=np.float64).reshape(-1)
            elif name in names:
                die(f"{path}: missing dataset '{key}' (see src/trace/SCHEMA.md)")
            else:
                out[name] = None
        if prefix and group in f:
            for name in f[group].keys():
                if name.startswith(prefix):
                    out[name] = np.asarray(f[group][name][...], dtype=np.float64).reshape(-1)
    return out


def eval_at(run, step):
    """eval/accuracy of the run at this step (its eval/ row's step), NaN if it has none."""
    c = run["eval_curve"]
    at = np.flatnonzero(c["step"] == step)
    return float(c["metric"][at[-1]]) if len(at) else np.nan


def load_trace(path, attrs, config, kind):
    """One finished trace of the study: report.py's reading of it (identity, summary, eval curve,
    train FLOPs and time), its configuration and what its kind adds."""
    run = load_run(path)  # schema checks, naming the file
    run.update(kind=kind, config=config, run_name=str(attrs["run_name"]), dir=Path(path).parent,
               task=str(config_value(config, "task.name", "")))
    if not run["task"]:
        die(f"{path}: its config has no task.name (the NExt study is reported per task)")
    steps = read_columns(path, "steps", ("step", "step_time", "flops"))
    run["steps"] = steps
    # Training compute (evaluation excluded), for every kind: report.py keeps it only for
    # language-model traces.
    run["train_flops"], run["train_time_s"] = float(steps["flops"].sum()), float(steps["step_time"].sum())
    if kind in ("plain", "continuation"):
        run["final_step"] = int(attrs.get("final_step", steps["step"][-1] if len(steps["step"]) else 0))
        run["first_step"] = int(config_value(config, "rlvr.first_step", 0))
        accuracy = run["eval_curve"]["metric"]
        run["final_eval"] = float(accuracy[-1]) if len(accuracy) else np.nan
    if kind == "extrapolation":
        cols = read_columns(path, "steps", (), ("linalg_flops", "linalg_s", "fit_flops", "fit_s",
                                               "extrapolate_s", "observed_step", "observed_accuracy",
                                               "sign_flips"), prefix=SWEEP)
        first = {k: (float(v[0]) if v is not None and len(v) else np.nan) for k, v in cols.items()}
        method = str(config_value(config, "extrapolate.method"))
        observed = first["observed_step"]
        if not np.isfinite(observed):
            observed = float(config_value(config, "extrapolate.observed_step", -1))
        if observed < 0:
            die(f"{path}: no steps/observed_step and extrapolate.observed_step = {observed:g}: cannot "
                "place the extrapolation on the RL-step axis")
        # The extrapolator's own cost: its linear algebra and (NExt) the predictor's training.
        parts_flops = [first[k] for k in ("linalg_flops", "fit_flops") if np.isfinite(first[k])]
        parts_s = [first[k] for k in ("linalg_s", "fit_s") if np.isfinite(first[k])]
        # Its whole wall time (extrapolate_s: cost above plus reading the trajectory, writing the
        # model; the alpha sweep's evaluations are not in it); step_time where it is missing.
        whole = first["extrapolate_s"]
        if not np.isfinite(whole):
            whole = float(steps["step_time"].sum())
        sweep = {}
        for key, v in cols.items():
            if key.startswith(SWEEP) and len(v):
                try:
                    sweep[float(key[len(SWEEP):])] = float(v[0])
                except ValueError:
                    die(f"{path}: steps/{key}: cannot read the alpha in its name")
        w_k = eval_at(run, 0)
        if not np.isfinite(w_k):
            w_k = first["observed_accuracy"]
        after = eval_at(run, 1)
        if not np.isfinite(after):
            notice(f"{path}: no eval/ row at step 1 (the extrapolated model's accuracy); left out of "
                   "'after extrapolation'")
        alpha = float(config_value(config, "next.alpha", np.nan))
        if method == "next" and alpha in sweep and abs(sweep[alpha] - after) > 1e-9:
            notice(f"{path}: the sweep's accuracy at alpha = {alpha:g} ({sweep[alpha]:.4f}) differs from "
                   f"eval/accuracy at step 1 ({after:.4f})")
        run["ext"] = {
            "method": method, "observed": observed, "w_k": w_k, "after": after,
            "cost_flops": sum(parts_flops) if parts_flops else float(steps["flops"].sum()),
            "cost_s": sum(parts_s) if parts_s else whole, "time_s": whole,
            "flops": float(steps["flops"].sum()),
            "align": bool(config_value(config, "next.align_signs", True)),
            "alpha": alpha if method == "next" else np.nan,
            "k": int(config_value(config, "next.k", 0)) if method == "next" else 0,
            "target": (float(config_value(config, "extrapolate.target_step", 0)) if method != "next"
                       else np.nan),
            "sweep": sweep, "sign_flips": first["sign_flips"],
            "fit_loss": float(attrs.get("final_train_fit_loss", np.nan)),
        }
    return run


class Linker:
    """Finds the trace of a run folder named in a config (extrapolate.trajectory, model.init_from):
    by the resolved folder, else by the folder's name when exactly one trace folder has it."""

    def __init__(self, runs):
        self.by_dir = {r["dir"].resolve(): r for r in runs}
        self.by_name = {}
        for r in runs:
            self.by_name.setdefault(r["dir"].name, []).append(r)

    def find(self, file_in_run_dir):
        folder = Path(file_in_run_dir).parent
        hit = self.by_dir.get(folder.resolve())
        if hit is not None:
            return hit
        named = self.by_name.get(folder.name, [])
        return named[0] if len(named) == 1 else None


def collect(paths):
    """Every finished trace of the study under paths, classified and linked. Returns the plain,
    extrapolation and continuation runs (each extrapolation with "plain" and "continuation", each
    continuation with "ext")."""
    found = {"plain": [], "extrapolation": [], "continuation": []}
    unfinished = 0
    for path in find_traces(paths):
        attrs, config = first_look(path)
        kind = classify(path, str(attrs["method"]), config)
        if kind == "warm start":
            notice(f"{path}: a supervised warm start (method sft), not part of the study's report; skipped")
            continue
        if attrs["status"] != "finished":
            notice(f"{path}: {kind} trace with status '{attrs['status']}', skipped")
            unfinished += 1
            continue
        found[kind].append(load_trace(path, attrs, config, kind))
    if not any(found.values()):
        die("no finished traces of the NExt study to report"
            + (f" ({unfinished} unfinished)" if unfinished else ""))

    plains = Linker(found["plain"])
    exts = Linker(found["extrapolation"])
    linked_ext = []
    for e in found["extrapolation"]:
        p = plains.find(config_value(e["config"], "extrapolate.trajectory"))
        if p is None:
            notice(f"{e['path']}: its plain run ({config_value(e['config'], 'extrapolate.trajectory')}) "
                   "has no finished trace here; the extrapolation is skipped")
            continue
        if (p["task"], p["seed"]) != (e["task"], e["seed"]):
            notice(f"{e['path']}: task/seed {e['task']}/{e['seed']} but its plain run {p['path']} has "
                   f"{p['task']}/{p['seed']}; reported under the plain run's")
            e["task"], e["seed"] = p["task"], p["seed"]
        e["plain"], e["continuation"] = p, None
        linked_ext.append(e)
    linked_cont = []
    for c in found["continuation"]:
        e = exts.find(config_value(c["config"], "model.init_from"))
        if e is None or "plain" not in e:
            notice(f"{c['path']}: its extrapolation ({config_value(c['config'], 'model.init_from')}) has no "
                   "finished, linked trace here; the continuation is skipped")
            continue
        if e["continuation"] is not None:
            notice(f"{c['path']}: {e['path']} is already continued by {e['continuation']['path']}; "
                   "this second continuation is skipped")
            continue
        if c["first_step"] != int(e["ext"]["observed"]):
            notice(f"{c['path']}: rlvr.first_step = {c['first_step']} but its extrapolation observed step "
                   f"{e['ext']['observed']:g}; real RL steps count the observed steps")
        c["ext"], e["continuation"] = e, c
        linked_cont.append(c)
    return found["plain"], linked_ext, linked_cont


# ----------------------------------------------------------------------------------------------
# Numbers per task


def variant_key(e):
    """Extrapolations of one method with the same settings are one variant (one table row)."""
    x = e["ext"]
    return (x["method"], x["align"], x["alpha"] if x["method"] == "next" else x["target"], x["k"],
            x["observed"])


def variant_names(keys):
    """Display names of the variants: the method's name, qualified only where several variants of
    one method are listed (signs not aligned, alpha, k, target step, observed step)."""
    names = {}
    for key in keys:
        method, align, param, k, observed = key
        same = [o for o in keys if o[0] == method]
        parts = []
        if not align:
            parts.append("signs not aligned")
        if len({o[2] for o in same}) > 1:
            parts.append(f"alpha={param:g}" if method == "next" else f"to step {param:g}")
        if len({o[3] for o in same}) > 1:
            parts.append(f"k={k}")
        if len({o[4] for o in same}) > 1:
            parts.append(f"from step {observed:g}")
        names[key] = EXTRAPOLATORS[method] + (f" ({', '.join(parts)})" if parts else "")
    return names


def prefix_sum(run, column, up_to):
    """Sum of a steps/ column over the run's steps 1..up_to."""
    s = run["steps"]
    return float(s[column][s["step"] <= up_to].sum())


def plain_value_at(p, step):
    """The plain run's eval accuracy at a step; interpolated between its evaluations (flagged) when
    it has none there."""
    v = eval_at(p, step)
    if np.isfinite(v):
        return v, False
    c = p["eval_curve"]
    if len(c["step"]) == 0 or step < c["step"][0] or step > c["step"][-1]:
        return np.nan, False
    return float(np.interp(step, c["step"], c["metric"])), True


def task_numbers(task, plains, exts):
    """The rows of the main table and what the sweep, ablation, plot and claims need."""
    plains = sorted(plains, key=lambda r: r["seed"])
    seeds = [p["seed"] for p in plains]
    if len(set(seeds)) < len(seeds):
        notice(f"{task}: several plain runs with the same seed: " + ", ".join(p["path"] for p in plains))
    steps = sorted({p["final_step"] for p in plains})
    if len(steps) > 1:
        notice(f"{task}: the plain runs ran different numbers of steps ({steps}); averaged anyway")
    base = mean_std([p["start_eval"] for p in plains])
    if not np.isfinite(base[0]):
        notice(f"{task}: no plain run has an eval/ row at step 0 (eval.at_start): no base score, no ICER")
    full = {"name": f"{PLAIN_NAME} ({steps[-1]} steps)", "kind": "plain", "n": len(plains),
            "final": mean_std([p["final_eval"] for p in plains]),
            "steps": mean_std([p["final_step"] for p in plains]),
            "flops": mean_std([p["train_flops"] for p in plains]),
            "time": mean_std([p["train_time_s"] for p in plains]),
            "ratio": mean_std([1.0 for _ in plains])}

    by_variant = {}
    for e in exts:
        by_variant.setdefault(variant_key(e), []).append(e)
    order = sorted(by_variant, key=lambda k: (list(EXTRAPOLATORS).index(k[0]), not k[1], k[2], k[3], k[4]))
    names = variant_names(order)
    # The main table: every aligned variant (the study continues those) and any other that was
    # continued; the unaligned NExt runs are the ablation's.
    main = [k for k in order if k[1] or any(e["continuation"] for e in by_variant[k])]
    rows = []
    for key in main:
        members = sorted(by_variant[key], key=lambda e: e["seed"])
        chains = [e for e in members if e["continuation"] is not None]
        lacking = [e for e in members if e["continuation"] is None]
        if lacking:
            notice(f"{task}: {names[key]}: seed(s) {', '.join(str(e['seed']) for e in lacking)} have no "
                   "finished continuation, left out of its final accuracy ("
                   + ", ".join(e["path"] for e in lacking) + ")")
        per = []
        for e in chains:
            c, p, x = e["continuation"], e["plain"], e["ext"]
            observed = x["observed"]
            per.append({
                "seed": e["seed"], "final": c["final_eval"], "steps": observed + c["final_step"],
                # The chain: the plain run's first observed steps, the extrapolation, the continuation.
                "flops": prefix_sum(p, "flops", observed) + x["flops"] + c["train_flops"],
                "time": prefix_sum(p, "step_time", observed) + x["time_s"] + c["train_time_s"],
                "plain_time": p["train_time_s"]})
        rows.append({
            "name": names[key], "kind": "extrapolation", "key": key, "method": key[0],
            "n": len(chains), "n_ext": len(members),
            "final": mean_std([q["final"] for q in per]),
            "steps": mean_std([q["steps"] for q in per]),
            "after": mean_std([e["ext"]["after"] for e in members]),
            "w_k": mean_std([e["ext"]["w_k"] for e in members]),
            "cost_flops": mean_std([e["ext"]["cost_flops"] for e in members]),
            "cost_s": mean_std([e["ext"]["cost_s"] for e in members]),
            "flops": mean_std([q["flops"] for q in per]),
            "time": mean_std([q["time"] for q in per]),
            "ratio": mean_std([q["time"] / q["plain_time"] for q in per if q["plain_time"] > 0]),
            "members": members})

    # GRPO-LoRA read off the plain curve at each real-step budget the chains used (100 in the study).
    budgets = sorted({int(round(r["steps"][0])) for r in rows if np.isfinite(r["steps"][0])})
    at_budget = []
    for b in budgets:
        values, interpolated = [], False
        for p in plains:
            v, interp = plain_value_at(p, b)
            values.append(v)
            interpolated |= interp
        if interpolated:
            notice(f"{task}: some plain runs have no evaluation at step {b}; their accuracy there is "
                   "interpolated between the neighbouring evaluations")
        at_budget.append({
            "name": f"{PLAIN_NAME} at {b} steps", "kind": "plain", "n": len(plains), "budget": b,
            "final": mean_std(values), "steps": (float(b), np.nan),
            "flops": mean_std([prefix_sum(p, "flops", b) for p in plains]),
            "time": mean_std([prefix_sum(p, "step_time", b) for p in plains]),
            "ratio": mean_std([prefix_sum(p, "step_time", b) / p["train_time_s"] for p in plains
                                if p["train_time_s"] > 0]),
            "interpolated": interpolated})
    for row in [full] + at_budget + rows:
        gain = row["final"][0] - base[0]
        row["icer"] = row["steps"][0] / gain if np.isfinite(gain) and gain > 0 else np.nan
        row["no_gain"] = bool(np.isfinite(gain) and gain <= 0)
    return {"task": task, "plains": plains, "base": base, "full": full, "at_budget": at_budget,
            "rows": rows, "by_variant": by_variant, "order": order, "names": names, "main": main}


# ----------------------------------------------------------------------------------------------
# Tables


def format_main(t, markdown=False):
    pm = "±" if markdown else "+-"
    header = ["method", "seeds", "final accuracy", "real RL steps", "after extrapolation", "W_K",
              "ICER", "extrap. FLOPs", "extrap. time", "train FLOPs", "train time", "time / plain"]
    body = []
    for r in [t["full"]] + t["at_budget"] + t["rows"]:
        ext = r["kind"] == "extrapolation"
        seeds = str(r["n"]) + (f" ({r['n_ext']} extrap.)" if ext and r["n_ext"] != r["n"] else "")
        icer = "-" if r["no_gain"] else fmt_count(r["icer"])
        body.append([r["name"] + ("~" if r.get("interpolated") else ""), seeds,
                     fmt_mean_std(r["final"], fmt_acc, pm), fmt_mean_std(r["steps"], fmt_steps, pm),
                     fmt_mean_std(r["after"], fmt_acc, pm) if ext else "n/a",
                     fmt_mean_std(r["w_k"], fmt_acc, pm) if ext else "n/a", icer,
                     fmt_mean_std(r["cost_flops"], fmt_count, pm) if ext else "n/a",
                     fmt_mean_std(r["cost_s"], fmt_seconds, pm) if ext else "n/a",
                     fmt_mean_std(r["flops"], fmt_count, pm), fmt_mean_std(r["time"], fmt_seconds, pm),
                     fmt_mean_std(r["ratio"], fmt_ratio, pm)])
    return render_table(header, body, markdown)


def main_notes(t):
    full, base = t["full"], t["base"]
    notes = [f"{len(t['plains'])} plain run(s); mean +- sample std over seeds (the std left out for "
             "one seed or agreeing seeds). Base score = eval accuracy of the plain runs at step 0 "
             f"(the SFT base): {fmt_mean_std(base, fmt_acc, '+-')}.",
             " ".join(["final accuracy = last eval/accuracy: of the plain run, or of the continuation "
                       "(GRPO-LoRA from the extrapolated model); real RL steps = the plain run's steps, "
                       "or the observed step + the continuation's steps."]
                      + [f"'{r['name']}' is the plain runs' eval accuracy at step {r['budget']}, the "
                         "extrapolated chains' real-step budget." for r in t["at_budget"]]),
             "after extrapolation = eval accuracy of the extrapolated model before any further RL "
             "(the extrapolation's eval/ step 1), W_K = of the last observed checkpoint (step 0); "
             "both over every extrapolated seed, continued or not.",
             "ICER = real RL steps / (final accuracy - base score), from the means; lower is better. "
             "'-': the final accuracy is not above the base score (no gain, ICER undefined).",
             "extrap. FLOPs / time = the extrapolator's own cost: steps/linalg_flops + fit_flops and "
             "steps/linalg_s + fit_s (SVDs, eigenproblems, PLS, the update; NExt's predictor training "
             "and inference).",
             "train FLOPs / train time: plain = sum of its steps/flops and steps/step_time (all ranks' "
             "FLOPs, rank 0's step times; evaluation excluded); an extrapolated chain = the plain "
             "run's first <observed step> steps + the extrapolation (steps/flops; extrapolate_s, its "
             "whole wall time without the alpha sweep's evaluations) + the continuation's sum of "
             "steps/flops and steps/step_time. time / plain = that over the same seed's plain train "
             f"time ({full['name']})."]
    if any(r.get("interpolated") for r in t["at_budget"]):
        notes.append("~: some plain runs had no evaluation at that step; interpolated linearly.")
    return notes


def sweep_rows(t):
    """(variant name, body rows) of each NExt variant with an alpha sweep."""
    out = []
    for key in t["order"]:
        members = sorted(t["by_variant"][key], key=lambda e: e["seed"])
        if key[0] != "next" or not any(e["ext"]["sweep"] for e in members):
            continue
        alphas = sorted({a for e in members for a in e["ext"]["sweep"]})
        used = key[2]
        rows = [("0 (W_K)", [e["ext"]["w_k"] for e in members], [0.0 for _ in members])]
        for a in alphas:
            have = [e for e in members if a in e["ext"]["sweep"]]
            rows.append((f"{a:g}" + (" (used)" if a == used else ""),
                         [e["ext"]["sweep"][a] for e in have],
                         [e["ext"]["sweep"][a] - e["ext"]["w_k"] for e in have]))
        out.append((t["names"][key], rows))
    return out


def format_sweep(rows, markdown=False):
    pm = "±" if markdown else "+-"
    header = ["alpha", "seeds", "accuracy after extrapolation", "minus W_K (per seed)"]
    body = [[label, str(len(acc)), fmt_mean_std(mean_std(acc), fmt_acc, pm),
             fmt_diff(mean_std(diff), pm)] for label, acc, diff in rows]
    return render_table(header, body, markdown)


def ablation_pairs(t):
    """(aligned variant, unaligned variant) pairs of NExt with equal alpha, k and observed step."""
    pairs = []
    for key in t["order"]:
        if key[0] == "next" and not key[1]:
            partner = (key[0], True) + key[2:]
            if partner in t["by_variant"]:
                pairs.append((partner, key))
            else:
                notice(f"{t['task']}: NExt without sign alignment (alpha {key[2]:g}, k {key[3]}) has no "
                       "aligned counterpart with the same settings; no ablation row")
    return pairs


def format_ablation(t, pairs, markdown=False):
    pm = "±" if markdown else "+-"
    minus = "−" if markdown else "-"
    header = ["NExt", "seeds", "alpha", "after extrapolation", "W_K", f"after {minus} W_K", "sign flips",
              "fit loss"]
    body = []
    for aligned, unaligned in pairs:
        groups = {}
        for key, label in ((aligned, "signs aligned"), (unaligned, "signs not aligned")):
            members = t["by_variant"][key]
            groups[key] = {e["seed"]: e["ext"] for e in members}
            body.append([label, str(len(members)), f"{key[2]:g}",
                         fmt_mean_std(mean_std([x["after"] for x in groups[key].values()]), fmt_acc, pm),
                         fmt_mean_std(mean_std([x["w_k"] for x in groups[key].values()]), fmt_acc, pm),
                         fmt_diff(mean_std([x["after"] - x["w_k"] for x in groups[key].values()]), pm),
                         fmt_mean_std(mean_std([x["sign_flips"] for x in groups[key].values()]),
                                      fmt_count, pm),
                         fmt_mean_std(mean_std([x["fit_loss"] for x in groups[key].values()]),
                                      lambda v: f"{v:.4g}", pm)])
        common = sorted(set(groups[aligned]) & set(groups[unaligned]))
        diff = [groups[aligned][s]["after"] - groups[unaligned][s]["after"] for s in common]
        body.append([f"aligned {minus} not aligned", f"{len(common)} paired", f"{aligned[2]:g}",
                     fmt_diff(mean_std(diff), pm), "", "", "", ""])
    return render_table(header, body, markdown)


ABLATION_NOTES = ["after extrapolation = eval accuracy of the extrapolated model, no further RL; "
                  "sign flips = steps/sign_flips (SVD vectors flipped to agree with the neighbouring "
                  "checkpoint's; 0 without alignment); fit loss = final_train_fit_loss (the predictor's L1).",
                  "aligned - not aligned: the difference of the accuracies after extrapolation, seed "
                  "by seed."]


# ----------------------------------------------------------------------------------------------
# Claims


def pooled(a, b):
    """One seed-std of a comparison: sqrt of the mean of the two variances (NaN without two seeds
    on both sides)."""
    if not (np.isfinite(a[1]) and np.isfinite(b[1])):
        return np.nan
    return float(np.sqrt((a[1] ** 2 + b[1] ** 2) / 2.0))


def claims(t):
    """The caveat (or None) and the sentences of "Which claim the numbers support", from the
    numbers."""
    full, base = t["full"], t["base"]
    gain = full["final"][0] - base[0]
    caveat = None
    if not np.isfinite(base[0]):
        caveat = ("no base score (no plain run evaluated at step 0), so the plain run's gain is "
                  "unknown: the comparisons below may not be decisive.")
    elif full["n"] < 2 or not np.isfinite(full["final"][1]):
        caveat = (f"{full['n']} plain seed(s): there is no seed spread to compare gains against, so "
                  "none of the comparisons below can be decisive.")
    elif gain <= full["final"][1]:
        caveat = (f"plain {full['name']} gained {gain:+.4f} over the base score "
                  f"({base[0]:.4f} -> {full['final'][0]:.4f}), not more than its seed std "
                  f"({full['final'][1]:.4f}): RL itself barely moved the model here, so no "
                  "comparison of the extrapolators against it can be decisive.")
    lines = []
    rows = [r for r in t["rows"] if r["n"] > 0]
    if not rows:
        lines.append("No extrapolated chain (extrapolation + continuation) has finished for this task "
                     "yet: nothing to compare.")
        return caveat, lines
    full_steps = full["steps"][0]
    for b in t["at_budget"]:
        d, spread = b["final"][0] - full["final"][0], pooled(b["final"], full["final"])
        rel = ("n/a (fewer than 2 seeds)" if not np.isfinite(spread) else "within one seed-std"
               if abs(d) <= spread else "below by more than one seed-std" if d < 0 else
               "above by more than one seed-std")
        lines.append(f"Reference: plain {b['name']} scores {b['final'][0]:.4f}, {d:+.4f} against "
                     f"{full['name']} (pooled seed-std " + (f"{spread:.4f}" if np.isfinite(spread) else "n/a")
                     + f"): {rel}. This is what stopping RL at the budget, without extrapolating, gives.")
    for r in rows:
        spread = pooled(r["final"], full["final"])
        d = r["final"][0] - full["final"][0]
        saving = 1.0 - r["steps"][0] / full_steps if full_steps > 0 else np.nan
        claim = (f"the claim \"saves {100 * saving:.1f}% of the RL steps at equal score\" "
                 f"({r['steps'][0]:.0f} real steps against {full_steps:.0f})")
        head = (f"{r['name']}: final accuracy {r['final'][0]:.4f} at {r['steps'][0]:.0f} real steps vs "
                f"{full['final'][0]:.4f} for {full['name']} (difference {d:+.4f}, pooled seed-std "
                + (f"{spread:.4f}" if np.isfinite(spread) else "n/a") + ")")
        if not np.isfinite(spread):
            verdict = f"undecided: fewer than 2 seeds on a side, so no spread to judge {claim} by."
        elif abs(d) <= spread:
            verdict = f"within one seed-std: supports {claim}."
        elif d < 0:
            verdict = f"clearly below: does not support {claim}."
        else:
            verdict = f"above by more than one seed-std: supports {claim}, with a better score."
        same = [b for b in t["at_budget"] if b["budget"] == int(round(r["steps"][0]))]
        extra = ""
        if same:
            b = same[0]
            db, sb = r["final"][0] - b["final"][0], pooled(r["final"], b["final"])
            rel = ("not judged (fewer than 2 seeds on a side)" if not np.isfinite(sb) else
                   "within one seed-std of it" if abs(db) <= sb else
                   "above by more than one seed-std" if db > 0 else "below by more than one seed-std")
            extra = (f" Against plain {b['name']} (the same real steps, no extrapolation: "
                     f"{b['final'][0]:.4f}) it is {db:+.4f}: {rel}.")
        lines.append(f"{head}: {verdict}{extra}")

    nexts = [r for r in rows if r["method"] == "next" and r["key"][1]]
    linear = [r for r in rows if r["method"] in LINEAR]
    if nexts and linear:
        n = nexts[0]
        best = max(linear, key=lambda r: r["final"][0])
        d, spread = n["final"][0] - best["final"][0], pooled(n["final"], best["final"])
        head = (f"NExt vs the best linear method ({best['name']}, {best['final'][0]:.4f}): "
                f"{n['final'][0]:.4f}, difference {d:+.4f}, pooled seed-std "
                + (f"{spread:.4f}" if np.isfinite(spread) else "n/a"))
        if not np.isfinite(spread):
            verdict = "undecided (fewer than 2 seeds on a side)."
        elif d > spread:
            verdict = ("NExt is ahead by more than the seed spread: supports NExt's claim of a nonlinear "
                       "advantage.")
        elif d >= -spread:
            verdict = ("within the seed spread: no nonlinear advantage measured; supports RELEX's claim "
                       "that a linear fit is as good.")
        else:
            verdict = ("NExt is behind by more than the seed spread: no nonlinear advantage; the linear "
                       "fit is better here (RELEX's claim holds, and more).")
        lines.append(f"{head}: {verdict}")
    elif nexts or linear:
        lines.append("NExt vs linear: " + ("no finished linear chain" if nexts else "no finished NExt chain")
                     + " to compare with.")
    return caveat, lines


# ----------------------------------------------------------------------------------------------
# Plot


JUMP_SPREAD = 0.6  # RL steps between neighbouring methods' jump lines in the plot


def curve_stats(curves):
    """Mean and sample std of eval accuracy over seeds, on the eval steps every seed has."""
    common = curves[0]["step"]
    for c in curves[1:]:
        common = np.intersect1d(common, c["step"])
    stack = np.array([c["metric"][np.searchsorted(c["step"], common)] for c in curves])
    std = stack.std(axis=0, ddof=1) if len(curves) > 1 else np.full(len(common), np.nan)
    return np.asarray(common, dtype=np.float64), stack.mean(axis=0), std


def plot_task(t, path):
    fig, ax = plt.subplots(figsize=(10, 5), dpi=120)
    x, y, s = curve_stats([p["eval_curve"] for p in t["plains"]])
    ax.plot(x, y, color="black", marker="o", ms=3, label=f"{t['full']['name']} (n={t['full']['n']})")
    if np.isfinite(s).any():
        ax.fill_between(x, y - s, y + s, color="black", alpha=0.12)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "sD^vP*X"
    for i, r in enumerate(t["rows"]):
        color, marker = colors[i % len(colors)], markers[i % len(markers)]
        observed = float(np.mean([e["ext"]["observed"] for e in r["members"]]))
        w_k, after = r["w_k"][0], r["after"][0]
        # The jump: W_K (on the plain curve) to the extrapolated model, at the observed step; the
        # methods' jumps are set a fraction of a step apart so that each stays visible.
        dx = JUMP_SPREAD * (i - (len(t["rows"]) - 1) / 2)
        ax.plot([observed + dx, observed + dx], [w_k, after], color=color, linestyle="--", linewidth=1.5)
        ax.plot([observed], [after], color=color, marker=marker, ms=6, linestyle="none")
        conts = [e["continuation"] for e in r["members"] if e["continuation"] is not None]
        label = f"{r['name']} (n={r['n']})"
        if conts:
            curves = [{"step": c["eval_curve"]["step"] + c["first_step"], "metric": c["eval_curve"]["metric"]}
                      for c in conts]
            cx, cy, cs = curve_stats(curves)
            ax.plot(cx, cy, color=color, marker=marker, ms=3, label=label)
            if np.isfinite(cs).any():
                ax.fill_between(cx, cy - cs, cy + cs, color=color, alpha=0.15)
        else:
            ax.plot([], [], color=color, marker=marker, linestyle="--", label=label + ", not continued")
    for b in t["at_budget"]:
        ax.axvline(b["budget"], color="0.5", linestyle=":", linewidth=1,
                   label=f"real-step budget of the extrapolated chains ({b['budget']})")
    ax.set_xlabel("real RL steps (GRPO steps taken; an extrapolation takes none)")
    ax.set_ylabel("eval accuracy (greedy, eval split)")
    ax.set_title(f"{t['task']}: eval accuracy vs real RL steps (mean over seeds, shaded ± 1 std)")
    ax.grid(True, alpha=0.3)
    ax.plot([], [], color="0.3", linestyle="--", label="extrapolation: W_K -> extrapolated model")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------


def bullet(notes):
    return "\n".join(f"- {n}".replace("+-", "±") for n in notes)


def report_task(t, out):
    """Print the task's section and return it as Markdown; draws its plot."""
    task = t["task"]
    caveat, lines = claims(t)
    png = f"accuracy_vs_rl_steps_{task}.png"
    plot_task(t, out / png)

    print(f"== {task} ==")
    if caveat:
        print()
        print("!" * 100)
        print(f"!! CAVEAT: {caveat}")
        print("!" * 100)
    print()
    print("Main table")
    print(format_main(t))
    print()
    print("\n".join(main_notes(t)))
    md = f"## {task}\n\n"
    if caveat:
        md += f"> **Caveat:** {caveat}\n\n"
    md += "### Main table\n\n" + format_main(t, markdown=True) + "\n\n" + bullet(main_notes(t)) + "\n\n"

    sweeps = sweep_rows(t)
    md += "### NExt alpha sweep (accuracy after extrapolation, no further RL)\n\n"
    if not sweeps:
        print("\nNExt alpha sweep: no finished NExt extrapolation with next.alpha_sweep")
        md += "No finished NExt extrapolation with next.alpha_sweep.\n\n"
    sweep_note = ("alpha = 0 is W_K, the last observed checkpoint; accuracy = steps/sweep_accuracy_alpha_<a> "
                  "(W_K + a x the predicted delta, greedy eval); alpha '(used)' is next.alpha, fixed in "
                  "advance (the sweep is for the record, not used to choose); minus W_K is taken seed by "
                  "seed.")
    for name, rows in sweeps:
        print(f"\nNExt alpha sweep: {name}")
        print(format_sweep(rows))
        md += f"{name}:\n\n" + format_sweep(rows, markdown=True) + "\n\n"
    if sweeps:
        print()
        print(sweep_note)
        md += bullet([sweep_note]) + "\n\n"

    pairs = ablation_pairs(t)
    md += "### Sign-alignment ablation (NExt, next.align_signs)\n\n"
    if pairs:
        print("\nSign-alignment ablation (accuracy after extrapolation, no further RL)")
        print(format_ablation(t, pairs))
        print()
        print("\n".join(ABLATION_NOTES))
        md += format_ablation(t, pairs, markdown=True) + "\n\n" + bullet(ABLATION_NOTES) + "\n\n"
    else:
        print("\nSign-alignment ablation: no finished NExt extrapolation with next.align_signs = false "
              "beside an aligned one")
        md += "No finished NExt extrapolation with next.align_signs = false beside an aligned one.\n\n"

    md += f"### Accuracy vs real RL steps\n\n![{task}: eval accuracy vs real RL steps]({png})\n\n"

    print("\nWhich claim the numbers support")
    if caveat:
        print(f"CAVEAT: {caveat}")
    for line in lines:
        print(f"- {line}")
    print()
    md += "### Which claim the numbers support\n\n"
    if caveat:
        md += f"**Caveat: {caveat}**\n\n"
    md += bullet(lines) + "\n"
    return md, png


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", metavar="RUNS_DIR_OR_TRACE",
                    help="the study's output folder (runs/next) or traces")
    ap.add_argument("--out", help="folder for report.md and the plots (default: <first folder>/report)")
    args = ap.parse_args(argv)

    plains, exts, _conts = collect(args.paths)
    tasks = list(dict.fromkeys([p["task"] for p in plains] + [e["task"] for e in exts]))
    numbers = []
    for task in tasks:
        task_plains = [p for p in plains if p["task"] == task]
        if not task_plains:
            notice(f"task '{task}' has no finished plain GRPO run; skipped")
            continue
        numbers.append(task_numbers(task, task_plains, [e for e in exts if e["task"] == task]))
    if not numbers:
        die("no finished plain GRPO run (grpo.trajectory_every > 0, rlvr.first_step = 0) in "
            + ", ".join(args.paths) + ": nothing to report")

    first = Path(args.paths[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / "report"
    out.mkdir(parents=True, exist_ok=True)
    sections, plots = [], []
    for t in numbers:
        md, png = report_task(t, out)
        sections.append(md)
        plots.append(png)
    head = ("# NExt study report\n\n"
            f"Traces from {', '.join(f'`{p}`' for p in args.paths)}: NExt, AlphaRL, RL-Extra and RELEX "
            "extrapolating the same early GRPO-LoRA trajectories, each continued by GRPO-LoRA, against "
            "plain GRPO-LoRA (methods.md section 4). Mean ± sample std over seeds.\n\n")
    text = head + "\n".join(sections)
    if NOTICES:
        text += ("\n## Warnings\n\nSkipped or approximated (also printed on stderr):\n\n"
                 + "\n".join(f"- {m}" for m in NOTICES) + "\n")
    (out / "report.md").write_text(text)
    print(f"wrote {out / 'report.md'} and {', '.join(plots)}", file=sys.stderr)


if __name__ == "__main__":
    main()
