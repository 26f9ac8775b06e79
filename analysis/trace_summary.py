#!/usr/bin/env python3
"""Print a trace's root attributes and table sizes, or the values of the attributes named.

    python analysis/trace_summary.py TRACE.h5            # every attribute but `config`
    python analysis/trace_summary.py TRACE.h5 status     # just the value(s), one per line

Scripts use the second form (e.g. `status` to decide whether to resume); exit 2 if the file
or an attribute named is missing.
"""
import sys

from report import die, h5py, plain  # report.py sets the HDF5 locking variable before h5py loads


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    path, names = argv[0], argv[1:]
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        die(f"{path}: cannot open as HDF5 ({e})")
    with f:
        for name in names:
            if name not in f.attrs:
                die(f"{path}: no root attribute '{name}'")
            print(plain(f.attrs[name]))
        if names:
            return 0
        for name in sorted(f.attrs):
            if name != "config":  # the whole resolved TOML: read it with h5dump or h5py
                print(f"{name}: {plain(f.attrs[name])}")
        for group in ("steps", "eval", "comm", "ranks"):
            if group in f:
                sizes = ", ".join(f"{k}[{f[group][k].shape[0] if f[group][k].shape else 1}]"
                                  for k in f[group])
                print(f"{group}/: {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
