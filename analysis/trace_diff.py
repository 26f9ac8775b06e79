#!/usr/bin/env python3
"""Compare two traces (or two folders of traces) value by value, leaving out what is measured.

    python analysis/trace_diff.py A B [--allow-new]

A and B are trace.h5 files, or folders: then every trace.h5 under A is paired with the one at
the same relative path under B. Every root attribute and every dataset (steps/, eval/, ranks/,
comm/calls, whatever else the file holds) must be equal, bit for bit for numbers (NaN equals NaN),
except what a run measures rather than computes: times, the host names, the start time, the
commit, the thread count and throughput derived from wall time. A refactor proves itself with it:
the same configs before and after must give no difference.

--allow-new  attributes and datasets that exist only in B are listed but are not differences
             (a change that adds a column or an attribute, and alters nothing else).
--ignore-config KEY  leave `KEY = ...` lines out of the stored configuration (e.g. out_dir when
             the two sets of runs were written to different folders); repeatable.

Exit 0 when equal, 1 when any difference was found, 2 on bad input.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

# Measured, not computed: they differ between two runs of the same config on the same machine.
MEASURED_ATTRS = {"start_time", "git_commit", "hosts", "threads_per_rank", "blas_core", "devices", "wall_time_s", "comm_time_s",
                  "version", "tokens_per_s", "env_steps_per_s", "generated_tokens_per_s"}
MEASURED_COLUMNS = {"wall_time", "step_time", "comm_time", "compute_time", "time_s", "algbw_GBps", "busbw_GBps",
                    # RL on a language model: the time split of a step and the sampling rate
                    "time_generate_s", "time_logprobs_s", "time_update_s", "generate_tokens_per_s"}


def measured(name):
    return name.rsplit("/", 1)[-1] in MEASURED_COLUMNS


def equal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.names or b.dtype.names:  # compound: field by field, measured fields left out
        if a.dtype.names != b.dtype.names or a.shape != b.shape:
            return False
        return all(equal(a[f], b[f]) for f in a.dtype.names if f not in MEASURED_COLUMNS)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def datasets(f):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return set(names)


def plain_config(value, ignored):
    text = value.decode() if isinstance(value, bytes) else str(value)
    return "\n".join(line for line in text.splitlines() if line.split(" = ")[0] not in ignored)


def describe(x, y):
    """The first differing line of two long strings, else both values."""
    x = x.decode() if isinstance(x, bytes) else x
    y = y.decode() if isinstance(y, bytes) else y
    if isinstance(x, str) and isinstance(y, str) and "\n" in x:
        for i, (lx, ly) in enumerate(zip(x.splitlines(), y.splitlines())):
            if lx != ly:
                return f"line {i + 1}: {lx!r} != {ly!r}"
        return f"{len(x.splitlines())} vs {len(y.splitlines())} lines"
    return f"{x!r} != {y!r}"


def diff(pa, pb, allow_new, ignored=()):
    problems, added = [], []
    with h5py.File(pa, "r") as a, h5py.File(pb, "r") as b:
        for name in sorted(set(a.attrs) | set(b.attrs)):
            if name in MEASURED_ATTRS:
                continue
            if name not in b.attrs:
                problems.append(f"attribute {name}: missing in B")
            elif name not in a.attrs:
                (added if allow_new else problems).append(f"attribute {name}: only in B")
            elif name == "config" and ignored:
                x, y = plain_config(a.attrs[name], ignored), plain_config(b.attrs[name], ignored)
                if x != y:
                    problems.append(f"attribute config: {describe(x, y)}")
            elif not equal(a.attrs[name], b.attrs[name]):
                problems.append(f"attribute {name}: {describe(a.attrs[name], b.attrs[name])}")
        da, db = datasets(a), datasets(b)
        for name in sorted(da | db):
            if measured(name):
                continue
            if name not in db:
                problems.append(f"dataset {name}: missing in B")
            elif name not in da:
                (added if allow_new else problems).append(f"dataset {name}: only in B")
            elif not equal(a[name][...], b[name][...]):
                x, y = np.asarray(a[name][...]), np.asarray(b[name][...])
                where = ""
                if x.shape == y.shape and not x.dtype.names:
                    bad = np.flatnonzero(~((x == y) | (np.isnan(x) & np.isnan(y)) if x.dtype.kind == "f" else x == y))
                    if bad.size:
                        i = bad[0]
                        where = f" (first at {i}: {x.reshape(-1)[i]!r} != {y.reshape(-1)[i]!r}, {bad.size} differ)"
                problems.append(f"dataset {name}: shapes {x.shape} / {y.shape}{where}")
    return problems, added


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--allow-new", action="store_true")
    p.add_argument("--ignore-config", action="append", default=[], metavar="KEY")
    args = p.parse_args(argv)
    a, b = Path(args.a), Path(args.b)
    for x in (a, b):
        if not x.exists():
            print(f"trace_diff: error: {x}: no such file or folder", file=sys.stderr)
            return 2
    if a.is_dir():
        pairs = [(t, b / t.relative_to(a)) for t in sorted(a.rglob("trace.h5"))]
        if not pairs:
            print(f"trace_diff: error: no trace.h5 under {a}", file=sys.stderr)
            return 2
    else:
        pairs = [(a, b)]
    bad = 0
    for ta, tb in pairs:
        if not tb.exists():
            print(f"{ta}: no counterpart {tb}")
            bad += 1
            continue
        problems, added = diff(ta, tb, args.allow_new, set(args.ignore_config))
        status = "differs" if problems else "identical"
        print(f"{ta} vs {tb}: {status}" + (f" (new in B: {len(added)})" if added else ""))
        for line in problems + [f"  (new) {x}" for x in added]:
            print(f"  {line}")
        bad += bool(problems)
    print(f"{len(pairs) - bad} of {len(pairs)} trace pair(s) identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
