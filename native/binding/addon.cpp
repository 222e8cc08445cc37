// The addon's entry point: registers the exports of the binding's files.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "napi_util.h"
#include "runtime.h"

// The CUDA caching allocator's statistics: only where LibTorch 2.x was built with CUDA (NER_WITH_CUDA,
// set by CMakeLists.txt) and its headers are reachable; everywhere else cudaMemoryStats() returns null.
#if defined(NER_WITH_CUDA) && !defined(NER_NO_CUDA_EXTRAS) && TORCH_VERSION_MAJOR >= 2 && \
    __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#define NER_HAS_CUDA_MEMORY_STATS 1
#else
#define NER_HAS_CUDA_MEMORY_STATS 0
#endif

namespace {

// exchangePaths(a, b): swaps two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE), so a
// checkpoint folder is replaced whole: whoever opens it sees the old one or the new one, never a mix.
// Throws an Error with code (e.g. "EINVAL" where the filesystem cannot) for the caller to fall back on.
Napi::Value ExchangePaths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "exchangePaths(a: string, b: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const auto a = info[0].As<Napi::String>().Utf8Value(), b = info[1].As<Napi::String>().Utf8Value();
#if defined(__linux__) && defined(SYS_renameat2)
  constexpr unsigned kRenameExchange = 1 << 1;  // RENAME_EXCHANGE
  if (syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), kRenameExchange) == 0) return env.Undefined();
  const int error = errno;
  auto e = Napi::Error::New(env, std::string("cannot exchange ") + a + " and " + b + ": " + std::strerror(error));
  e.Set("code", Napi::String::New(env, error == EINVAL ? "EINVAL" : error == ENOSYS ? "ENOSYS" : error == ENOENT ? "ENOENT" : "EIO"));
  e.ThrowAsJavaScriptException();
#else
  auto e = Napi::Error::New(env, "exchanging paths is not supported on this platform");
  e.Set("code", Napi::String::New(env, "ENOSYS"));
  e.ThrowAsJavaScriptException();
#endif
  return env.Undefined();
}

// cudaMemoryStats() -> { device, allocatedBytes, peakAllocatedBytes, reservedBytes, peakReservedBytes,
// resetPeak() } for the current CUDA device (bytes held by tensors / by the caching allocator), or null.
Napi::Value CudaMemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if NER_HAS_CUDA_MEMORY_STATS
  return ner::binding::guarded(env, [&]() -> Napi::Value {
    if (!torch::cuda::is_available()) return env.Null();
    const auto device = c10::cuda::current_device();
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
    auto out = Napi::Object::New(env);
    out.Set("device", Napi::Number::New(env, device));
    // [0]: StatType::AGGREGATE (small and large pools together)
    out.Set("allocatedBytes", Napi::Number::New(env, static_cast<double>(stats.allocated_bytes[0].current)));
    out.Set("peakAllocatedBytes", Napi::Number::New(env, static_cast<double>(stats.allocated_bytes[0].peak)));
    out.Set("reservedBytes", Napi::Number::New(env, static_cast<double>(stats.reserved_bytes[0].current)));
    out.Set("peakReservedBytes", Napi::Number::New(env, static_cast<double>(stats.reserved_bytes[0].peak)));
    out.Set("resetPeak", Napi::Function::New(env, [device](const Napi::CallbackInfo& call) -> Napi::Value {
      return ner::binding::guarded(call.Env(), [&]() -> Napi::Value {
        c10::cuda::CUDACachingAllocator::resetPeakStats(device);
        return call.Env().Undefined();
      });
    }));
    return out;
  });
#else
  return env.Null();
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__GLIBC__)
  // LibTorch's CPU tensors come from malloc. With glibc's defaults, each step's large activations are
  // mmap'ed and unmapped (or trimmed) again, and the page faults cost several percent of a training
  // step; keep freed memory in the heap instead (NER_MALLOC_TUNING=0 leaves glibc's defaults).
  const char* tuning = std::getenv("NER_MALLOC_TUNING");
  if (tuning == nullptr || std::string(tuning) != "0") {
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
#endif
  const auto runtime = ner::configureRuntime();
  ner::binding::InitTagger(env, exports);
  ner::binding::InitCrf(env, exports);
  exports.Set("libtorchVersion", Napi::String::New(env, TORCH_VERSION));
  exports.Set("cudaAvailable", Napi::Boolean::New(env, torch::cuda::is_available()));
  exports.Set("cudaMemoryStats", Napi::Function::New(env, CudaMemoryStats));
  exports.Set("exchangePaths", Napi::Function::New(env, ExchangePaths));
  // Built with at::_fused_adamw_ (LibTorch 2.x): CUDA training uses it unless NER_FUSED_ADAMW=0.
  exports.Set("fusedAdamW", Napi::Boolean::New(env, NER_HAS_FUSED_ADAMW));
  // Some LibTorch builds (Debian's among them) start with one intra-op thread whatever the machine:
  // configureRuntime (native/runtime.h) sets ATen's and the BLAS's threads from the cores and the BLAS.
  auto info = Napi::Object::New(env);
  info.Set("cores", runtime.cores);
  info.Set("coresSource", runtime.coresSource);
  info.Set("atenThreads", runtime.atenThreads);
  info.Set("blasThreads", runtime.blasThreads);
  info.Set("blasLibrary", runtime.blasLibrary);
  info.Set("blasProvider", runtime.blasProvider);
  info.Set("blasConfig", runtime.blasConfig);
  info.Set("threadSource", runtime.threadSource);
  info.Set("warning", runtime.warning);
  exports.Set("runtime", info);
  return exports;
}

}  // namespace

NODE_API_MODULE(ner_engine, Init)
