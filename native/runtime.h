// What the engine runs on (the BLAS behind LibTorch, its threading, the CPU budget) and the thread
// settings chosen from it, once, when the addon loads.
#pragma once
#include <string>

namespace ner {

struct RuntimeInfo {
  int cores = 1;              // CPUs this process may use: affinity mask, capped by a cgroup CPU quota
  std::string coresSource;    // "affinity" or "cgroup quota"
  int atenThreads = 1;        // ATen intra-op threads (elementwise ops, reductions)
  int blasThreads = 1;        // threads a BLAS call may use
  std::string blasLibrary;    // the file sgemm_ resolves to (after symlinks)
  std::string blasProvider;   // "openblas-openmp", "openblas-pthread", "openblas-serial", "mkl", "reference" or "unknown"
  std::string blasConfig;     // openblas_get_config() + core name, when OpenBLAS
  std::string threadSource;   // why these thread counts: the environment variables obeyed, or the rule applied
  std::string warning;        // non-empty when the setup is known to be slow (reference BLAS)
};

// Decides and applies the thread counts: ATen threads x BLAS threads that can run at the same time never
// exceed `cores`. OpenMP OpenBLAS shares ATen's OpenMP pool (a GEMM runs on the same threads, outside
// ATen's parallel regions), so ATen gets every core; pthread OpenBLAS has a pool of its own that would
// compete with ATen's spinning OpenMP workers, so ATen gets one thread and the BLAS every core.
// OMP_NUM_THREADS and OPENBLAS_NUM_THREADS, when set, are obeyed as they are.
RuntimeInfo configureRuntime();

}  // namespace ner
