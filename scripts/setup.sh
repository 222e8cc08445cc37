#!/usr/bin/env bash
# Installs what the native build needs on a fresh Debian/Ubuntu machine: a C++ toolchain, CMake and
# LibTorch (Debian's libtorch-dev, CPU). Skips LibTorch when one is already available
# (LIBTORCH_DIR / Torch_DIR, a PyTorch for python3, or the system's).
set -euo pipefail

have_libtorch() {
  [[ -n "${LIBTORCH_DIR:-}" || -n "${Torch_DIR:-}" ]] && return 0
  python3 -c 'import torch' >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/*/cmake/Torch/TorchConfig.cmake" >/dev/null && return 0
  return 1
}

packages=()
command -v cmake >/dev/null || packages+=(cmake)
command -v g++ >/dev/null || packages+=(g++)
command -v ninja >/dev/null || packages+=(ninja-build)
have_libtorch || packages+=(libtorch-dev)
# Debian's LibTorch links the generic libblas.so.3; without an optimised provider it falls back to the
# reference BLAS, which makes training ~8x slower. OpenBLAS (OpenMP build, sharing torch's thread pool)
# takes over libblas.so.3 through update-alternatives.
if compgen -G "/usr/lib/*/cmake/Torch/TorchConfig.cmake" >/dev/null || [[ " ${packages[*]} " == *" libtorch-dev "* ]]; then
  dpkg -s libopenblas0-openmp >/dev/null 2>&1 || packages+=(libopenblas0-openmp)
fi

if ((${#packages[@]} == 0)); then
  echo "setup: toolchain and LibTorch already present"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup: missing ${packages[*]}; install them with your system's package manager (or set LIBTORCH_DIR)" >&2
  exit 1
fi
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "setup: installing ${packages[*]} with apt-get"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${packages[@]}"
