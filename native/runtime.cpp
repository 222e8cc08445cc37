#include "runtime.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <sched.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ner {

namespace {

int affinityCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

// The CPU quota of this process's cgroup in whole CPUs (rounded down: a thread more than the quota is
// throttled while the others wait for it at every barrier), or 0 when there is none.
int cgroupQuotaCores() {
  std::string relative;  // cgroup v2: the line "0::/path" of /proc/self/cgroup
  std::ifstream self("/proc/self/cgroup");
  for (std::string line; std::getline(self, line);)
    if (line.rfind("0::", 0) == 0) relative = line.substr(3);
  for (const std::string& file : {"/sys/fs/cgroup" + relative + "/cpu.max", std::string("/sys/fs/cgroup/cpu.max")}) {
    std::ifstream in(file);
    std::string quota;
    double period = 0;
    if (in >> quota >> period && quota != "max" && period > 0) return std::max(1, static_cast<int>(std::atof(quota.c_str()) / period));
  }
  std::ifstream quotaV1("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), periodV1("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double quota = -1, period = 0;
  if (quotaV1 >> quota && periodV1 >> period && quota > 0 && period > 0) return std::max(1, static_cast<int>(quota / period));
  return 0;
}

std::string realPath(const char* path) {
  char resolved[PATH_MAX];
  return path && realpath(path, resolved) ? std::string(resolved) : std::string(path ? path : "");
}

struct Blas {
  std::string library, provider = "unknown", config;
  int (*getNumThreads)() = nullptr;
  void (*setNumThreads)(int) = nullptr;
};

// The library LibTorch's sgemm_ calls resolve to: looked up from libtorch_cpu, whose dependencies are
// searched in the order the dynamic linker uses for it.
Blas findBlas() {
  Blas blas;
  Dl_info self{};  // the library at::set_num_threads lives in, whatever its file name and version
  void* torch = dladdr(reinterpret_cast<void*>(&at::set_num_threads), &self) && self.dli_fname
                    ? dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD)
                    : nullptr;
  void* sgemm = dlsym(torch ? torch : RTLD_DEFAULT, "sgemm_");
  Dl_info where{};
  if (!sgemm || !dladdr(sgemm, &where) || !where.dli_fname) return blas;
  blas.library = realPath(where.dli_fname);
  void* lib = dlopen(where.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  auto symbol = [&](const char* name) { return lib ? dlsym(lib, name) : nullptr; };
  const auto parallel = reinterpret_cast<int (*)()>(symbol("openblas_get_parallel"));
  const auto config = reinterpret_cast<char* (*)()>(symbol("openblas_get_config"));
  const auto core = reinterpret_cast<char* (*)()>(symbol("openblas_get_corename"));
  if (parallel) {
    const int mode = parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
    blas.provider = mode == 2 ? "openblas-openmp" : mode == 1 ? "openblas-pthread" : "openblas-serial";
    blas.getNumThreads = reinterpret_cast<int (*)()>(symbol("openblas_get_num_threads"));
    blas.setNumThreads = reinterpret_cast<void (*)(int)>(symbol("openblas_set_num_threads"));
    std::ostringstream out;
    if (config) out << config();
    if (core) out << " (core " << core() << ")";
    blas.config = out.str();
  } else if (blas.library.find("mkl") != std::string::npos) {
    blas.provider = "mkl";
  } else if (blas.library.find("blis") != std::string::npos) {
    blas.provider = "blis";
  } else if (blas.library.find("atlas") != std::string::npos) {
    blas.provider = "atlas";
  } else if (blas.library.find("/blas/") != std::string::npos || blas.library.find("libblas.so") != std::string::npos) {
    blas.provider = "reference";  // Debian's netlib libblas3: /usr/lib/<triplet>/blas/libblas.so.3
  }
  if (lib) dlclose(lib);
  if (torch) dlclose(torch);
  return blas;
}

}  // namespace

RuntimeInfo configureRuntime() {
  RuntimeInfo info;
  info.cores = affinityCores();
  info.coresSource = "affinity";
  if (const int quota = cgroupQuotaCores(); quota > 0 && quota < info.cores) {
    info.cores = quota;
    info.coresSource = "cgroup quota";
  }
  const Blas blas = findBlas();
  info.blasLibrary = blas.library;
  info.blasProvider = blas.provider;
  info.blasConfig = blas.config;

  const bool ompSet = std::getenv("OMP_NUM_THREADS") != nullptr;
  const bool blasSet = std::getenv("OPENBLAS_NUM_THREADS") != nullptr;
  if (ompSet || blasSet) {
    info.threadSource = std::string("environment (") + (ompSet ? "OMP_NUM_THREADS" : "") + (ompSet && blasSet ? ", " : "") +
                        (blasSet ? "OPENBLAS_NUM_THREADS" : "") + ")";
  } else if (blas.provider == "openblas-pthread") {
    at::set_num_threads(1);
    if (blas.setNumThreads) blas.setNumThreads(info.cores);
    info.threadSource = "pthread OpenBLAS: 1 ATen thread, every core to the BLAS";
  } else {
    at::set_num_threads(info.cores);
    info.threadSource = blas.provider == "openblas-openmp" ? "OpenMP OpenBLAS shares ATen's pool: every core"
                                                           : "every core to ATen";
  }
  info.atenThreads = at::get_num_threads();
  info.blasThreads = blas.provider == "openblas-openmp" ? info.atenThreads
                     : blas.getNumThreads               ? blas.getNumThreads()
                                                        : info.atenThreads;
  if (blas.provider == "reference")
    info.warning = "LibTorch runs on the reference BLAS (" + blas.library +
                   "), about 8x slower than OpenBLAS: install libopenblas0-openmp (bash scripts/setup.sh does)";
  return info;
}

}  // namespace ner
