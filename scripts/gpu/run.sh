#!/usr/bin/env bash
# The ONE command for the GPU machine (issue 5): builds the addon against PyTorch's CUDA LibTorch, runs the
# GPU checks (scripts/gpu/test-gpu.mjs), the HF baseline (scripts/bench_hf.py) and this engine's benchmark
# (scripts/bench-gpu.mjs) in one call, within the device tool's 10 minutes.
#
# 1. Here, first:   bash scripts/gpu/prepare.sh      (node, production node_modules and data into .gpu/; dist/)
# 2. Device tool:   run(command="bash scripts/gpu/run.sh", carry=[".gpu", "dist"], timeout_s=600)
#    (all of node_modules is ~90 MB, over the 64 MiB that may travel: .gpu/ holds the part that is needed.)
# 3. Back in $OUT (8 files): env.txt build.log test-gpu.log bench-hf.log bench-hf.json bench-gpu.log
#    bench-gpu.json BENCHMARKS-section.md: append the last to BENCHMARKS.md.
# Knobs (prefix the command): MAX_SENTENCES=N (both benchmarks train on the first N train sentences and
# predict the first N test ones; default: all 14041 / 3453), SHAPES=base,mini, SKIP_TESTS=1, SKIP_HF=1;
# for a check of this script on a CPU machine: DEVICE=cpu SKIP_BUILD=1 SKIP_HF=1 SHAPES=tiny MAX_SENTENCES=100.
# The benchmarks get what is left of a 570 s budget; each writes its JSON after every run, so a run cut
# short still returns the figures it has.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
START=$(date +%s)
BUDGET=${BUDGET:-570}
SHAPES=${SHAPES:-base,mini}
DEVICE=${DEVICE:-cuda}
left() { echo $((BUDGET - ($(date +%s) - START))); }
say() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$OUT/env.txt"; }
status=0

# --- tools: node (carried in .gpu), node_modules, data, CUDA toolkit, torch's libraries ---
if ! command -v node >/dev/null; then
  mkdir -p /tmp/node-bin && xz -dc .gpu/node.xz >/tmp/node-bin/node && chmod +x /tmp/node-bin/node
  export PATH=/tmp/node-bin:$PATH
fi
[ -d node_modules/cmake-js ] || tar -xJf .gpu/node_modules.tar.xz
if [ -z "${NER_SHARED:-}" ]; then
  if [ -d ../shared/data/conll2003 ]; then NER_SHARED=$(cd ../shared && pwd); else NER_SHARED=$PWD/.gpu/shared; fi
fi
export NER_SHARED
for d in /usr/local/cuda/bin /usr/local/cuda-13*/bin; do
  if [ -x "$d/nvcc" ] && ! command -v nvcc >/dev/null; then export PATH=$PATH:$d; fi
done
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
# The CUDA wheels keep cuBLAS, cuDNN, ... under site-packages/nvidia/*/lib; Python preloads them, node does not.
LIBS=$(python3 - <<'EOF'
import glob, os, site, torch
dirs = [os.path.join(os.path.dirname(torch.__file__), "lib")]
for sp in site.getsitepackages():
    dirs += sorted({os.path.dirname(p) for p in glob.glob(os.path.join(sp, "nvidia", "**", "lib*.so*"), recursive=True)})
print(":".join(dirs))
EOF
) 2>/dev/null
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "| transformers", transformers.__version__)'
  echo "node $(node --version); $(nvcc --version | tail -1); cmake $(cmake --version | head -1); $(nproc) cores"
  echo "NER_SHARED=$NER_SHARED MAX_SENTENCES=${MAX_SENTENCES:-all} SHAPES=$SHAPES"
} >>"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# --- build; a failed one is tried again: with the NVTX shim if it failed on nvToolsExt, then without the
# LibTorch 2.x CUDA extras (fused AdamW, memory statistics: checked on CPU machines only against LibTorch
# 2.13 CPU headers, never against a CUDA LibTorch) ---
export CMAKE_POLICY_VERSION_MINIMUM=3.5  # CMake 4 refuses older cmake_minimum_required in package files
build() { NER_CMAKE_ARGS="$1" node scripts/build-native.mjs >>"$OUT/build.log" 2>&1; }
say "building the addon"
ARGS="-DNER_BENCH=OFF -DNER_CUDA_EXTRAS=ON -DNER_NVTX_SHIM=OFF"
if [ -n "${SKIP_BUILD:-}" ]; then
  say "SKIP_BUILD: using the addon in build/"
elif ! build "$ARGS"; then
  built=
  if grep -qi nvtoolsext "$OUT/build.log"; then
    ARGS="-DNER_BENCH=OFF -DNER_CUDA_EXTRAS=ON -DNER_NVTX_SHIM=ON"
    say "BUILD FAILED on nvToolsExt; again with $ARGS (see build.log)"
    rm -rf build
    build "$ARGS" && built=1
  fi
  if [ -z "$built" ]; then
    ARGS=${ARGS/EXTRAS=ON/EXTRAS=OFF}
    say "BUILD FAILED; again with $ARGS (see build.log)"
    rm -rf build
    if ! build "$ARGS"; then
      say "BUILD FAILED"
      tail -40 "$OUT/build.log"
      exit 1
    fi
    status=2
  fi
fi
node -e 'import("./dist/native.js").then(({ native: n }) => { const a = n(); console.log(`addon: LibTorch ${a.libtorchVersion}, CUDA ${a.cudaAvailable}, fused AdamW ${a.fusedAdamW}, memory stats ${a.cudaMemoryStats() !== null}`); })' 2>&1 | tee -a "$OUT/env.txt"
say "built"

# --- GPU checks ---
if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 150 node scripts/gpu/test-gpu.mjs --device "$DEVICE" >"$OUT/test-gpu.log" 2>&1 || status=1
  grep -E '^(ok|FAIL)|checks? (passed|failed)' "$OUT/test-gpu.log" | cut -c1-400
  say "tests done (status $status)"
fi

# --- benchmarks: HF first, then this engine with the ratios ---
BOUND=()
if [ -n "${MAX_SENTENCES:-}" ]; then
  BOUND=(--max-sentences "$MAX_SENTENCES")
  say "NOTE: both benchmarks are bounded to the first $MAX_SENTENCES sentences of train and of test (MAX_SENTENCES)"
fi
if [ -z "${SKIP_HF:-}" ]; then
  hf_time=$(($(left) / 2))
  say "HF baseline (up to $hf_time s)"
  PYTHONUNBUFFERED=1 timeout "$hf_time" python3 scripts/bench_hf.py --shapes "$SHAPES" "${BOUND[@]}" \
    --json "$OUT/bench-hf.json" >"$OUT/bench-hf.log" 2>&1 || say "HF baseline stopped early (exit $?): its JSON holds the runs that finished"
  grep -vE 'warn|Warn' "$OUT/bench-hf.log" | tail -8
fi
HF=()
[ -s "$OUT/bench-hf.json" ] && HF=(--hf-json "$OUT/bench-hf.json" --md "$OUT/BENCHMARKS-section.md")
engine_time=$(($(left) - 10))
say "engine benchmark (up to $engine_time s)"
NER_BENCH_COMMAND="bash scripts/gpu/run.sh (MAX_SENTENCES=${MAX_SENTENCES:-all})" timeout "$engine_time" \
  node scripts/bench-gpu.mjs --shapes "$SHAPES" --device "$DEVICE" "${BOUND[@]}" --json "$OUT/bench-gpu.json" "${HF[@]}" \
  >"$OUT/bench-gpu.log" 2>&1 || say "engine benchmark stopped early or failed (exit $?)"
tail -25 "$OUT/bench-gpu.log"
say "done (status $status: 0 = all passed, 1 = a check failed, 2 = built without the CUDA extras)"
exit $status
