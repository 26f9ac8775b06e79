#!/usr/bin/env bash
# Installs what frugal needs on Debian 12 (run as root, or with sudo available), idempotently:
# the C++ toolchain and libraries from Debian, and the analysis packages into ./.venv from PyPI.
# CUDA/NCCL are optional: the build uses them when nvcc is on PATH (or in /usr/local/cuda/bin).
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  build-essential cmake git pkg-config
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libopenblas-openmp-dev liblapack-dev
  libtomlplusplus-dev librandom123-dev libzstd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv python3-pip
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Analysis environment (h5py, numpy, matplotlib). A venv keeps PEP 668 Debian pythons happy.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import h5py, numpy, matplotlib" 2>/dev/null; then
  echo "setup: installing analysis/requirements.txt into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r analysis/requirements.txt
fi
echo "setup: ok"
