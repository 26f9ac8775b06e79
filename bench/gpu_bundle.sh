#!/usr/bin/env bash
# Packs prebuilt GPU test and benchmark programs and the frugal executable, with the shared libraries they load, into one
# tarball for a GPU node that has the NVIDIA driver and CUDA toolkit but not frugal's build
# dependencies (MPI, HDF5, OpenBLAS, toml++, ...): a common state for compute nodes, whose images
# carry run-time libraries but no -dev packages. bench/gpu_check.sh runs such a bundle:
#
#   cmake -S . -B build/gpu -DFRUGAL_ARCH=x86-64-v3 -DCMAKE_CUDA_ARCHITECTURES=90   # the nodes' ISA
#   cmake --build build/gpu -j
#   bash bench/gpu_bundle.sh build/gpu gpu_bundle.tgz
#   GPU_CHECK_BUNDLE=gpu_bundle.tgz bash bench/gpu_check.sh          # on the GPU node
#
# Left out: glibc, the C++ runtime (a node's newer one serves older binaries), CUDA's own
# libraries (cudart, cuBLAS), which must match the node's driver and come from its toolkit, and
# NCCL (218 MB of device code for every architecture: over a device call's 64 MiB), which
# gpu_check.sh finds on the node (the toolkit's, or pip's nvidia-nccl-cu13).
set -euo pipefail
build=${1:?usage: gpu_bundle.sh BUILD_DIR OUT.tgz}
out=${2:?usage: gpu_bundle.sh BUILD_DIR OUT.tgz}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/tests" "$stage/bench" "$stage/lib"

programs=()
for p in "$build"/tests/test_cuda_* "$build"/bench/bench_*gpu*; do
  [ -x "$p" ] && [ -f "$p" ] && programs+=("$p")
done
((${#programs[@]})) || { echo "gpu_bundle: no GPU programs in $build (configure with CUDA)" >&2; exit 2; }
for p in "${programs[@]}"; do cp "$p" "$stage/$(basename "$(dirname "$p")")/"; done
# The frugal executable too, for gpu_check's short DDP runs (cpu vs cuda, one rank: MPI singleton).
if [ -x "$build/frugal" ]; then
  cp "$build/frugal" "$stage/frugal"
  programs+=("$build/frugal")
fi

system='/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl)\.so'
ldd "${programs[@]}" | awk '/=> \//{print $3}' | sort -u | grep -vE "$system" | while read -r lib; do
  cp -L "$lib" "$stage/lib/"
done
tar czf "$out" -C "$stage" .
echo "gpu_bundle: ${#programs[@]} programs, $(ls "$stage/lib" | wc -l) libraries -> $out ($(du -h "$out" | cut -f1))"
