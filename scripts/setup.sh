#!/usr/bin/env bash
# Installs what the native build needs on a fresh Debian/Ubuntu machine: a C++ toolchain, CMake and
# LibTorch (Debian's libtorch-dev, CPU). Skips LibTorch when one is already available
# (LIBTORCH_DIR / Torch_DIR, a PyTorch for python3, or the system's). Also installs Chromium, which
# test/report-browser.test.ts drives (through puppeteer-core) to check that report.html renders.
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
# puppeteer-core downloads no browser; the report test uses the system one at /usr/bin/chromium.
command -v chromium >/dev/null || packages+=(chromium)
have_libtorch || packages+=(libtorch-dev)
# Debian's LibTorch links the generic libblas.so.3; without an optimised provider it falls back to the
# reference BLAS, which makes training ~8x slower. OpenBLAS (OpenMP build, sharing torch's thread pool)
# takes over libblas.so.3 through update-alternatives.
if compgen -G "/usr/lib/*/cmake/Torch/TorchConfig.cmake" >/dev/null || [[ " ${packages[*]} " == *" libtorch-dev "* ]]; then
  dpkg -s libopenblas0-openmp >/dev/null 2>&1 || packages+=(libopenblas0-openmp)
fi

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"

# Pins the OpenMP OpenBLAS for libblas.so.3, liblapack.so.3 and libopenblas.so.0 (all three: LibTorch
# links each). In auto mode a later install of the pthread build (python3-numpy pulls it in) takes over
# with a higher priority, and its own thread pool then competes with LibTorch's OpenMP threads.
pin_openblas() {
  command -v update-alternatives >/dev/null || return 0
  local triplet
  triplet=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
    local target="/usr/lib/$triplet/openblas-openmp/$lib"
    [[ -e "$target" ]] || continue
    $sudo update-alternatives --set "$lib-$triplet" "$target" >/dev/null
  done
  echo "setup: BLAS pinned to OpenMP OpenBLAS ($(readlink -f "/usr/lib/$triplet/libblas.so.3"))"
}

if ((${#packages[@]} == 0)); then
  echo "setup: toolchain, LibTorch and Chromium already present"
  pin_openblas
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup: missing ${packages[*]}; install them with your system's package manager (or set LIBTORCH_DIR)" >&2
  exit 1
fi
echo "setup: installing ${packages[*]} with apt-get"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${packages[@]}"
pin_openblas
