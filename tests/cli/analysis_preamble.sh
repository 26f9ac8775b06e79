# shellcheck shell=bash disable=SC2034  # the variables set here are for the sourcing test
# The start both analysis tests share (sourced, not a test: ctest runs only test_*.sh): arguments
# FRUGAL_BIN SOURCE_DIR SCRATCH_DIR into bin, src, scratch; the analysis python (FRUGAL_PYTHON, or
# the source's .venv) into python; the tiny config into config; fail(); and a skip (exit 77) when
# the python lacks the modules named in ANALYSIS_MODULES.
if [ $# -ne 3 ]; then
  echo "usage: $0 FRUGAL_BIN SOURCE_DIR SCRATCH_DIR" >&2
  exit 2
fi
bin=$1
src=$(cd "$2" && pwd)
scratch=$3
python=${FRUGAL_PYTHON:-$src/.venv/bin/python}
config=$src/configs/quickstart/tiny.toml

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Without the analysis packages there is nothing to test here (./setup.sh installs them).
modules=${ANALYSIS_MODULES:-h5py, numpy, matplotlib}
if ! "$python" -c "import $modules" >/dev/null 2>&1; then
  echo "SKIP: '$python' cannot import $modules (run ./setup.sh)"
  exit 77  # ctest: skipped
fi
[ -x "$bin" ] || fail "frugal binary missing or not executable: $bin"
[ -f "$config" ] || fail "config missing: $config"
