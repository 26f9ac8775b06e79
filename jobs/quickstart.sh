#!/usr/bin/env bash
# The main job: build (if needed), run the quickstart study - every method on the same model,
# data and token budget - print the comparison table, and write plots with analysis/report.py.
#   bash jobs/quickstart.sh [--section.key=value ...]     (overrides apply to every run)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --workflow --preset release > build-quickstart.log 2>&1 || { tail -30 build-quickstart.log; exit 1; }
rm -f build-quickstart.log
./build/release/frugal compare configs/quickstart/study.toml "$@"
# The table above came from frugal compare; report.py adds the plots (and report.md with seeds).
.venv/bin/python analysis/report.py runs/quickstart --out runs/quickstart/report > /dev/null
echo "plots and report: runs/quickstart/report/ (loss_vs_tokens.png, loss_vs_bytes.png, loss_vs_time.png, report.md)"
