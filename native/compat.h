// The one place that knows which LibTorch version we are built against (1.13 on Debian, 2.x with CUDA).
#pragma once
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>

#include "dropout.h"

#if TORCH_VERSION_MAJOR >= 2
#define NER_HAS_SDPA 1
#else
#define NER_HAS_SDPA 0
#endif

// at::_fused_adamw_ (the multi-tensor kernel behind torch.optim.AdamW(fused=True)); used on CUDA only
// (see Trainer::fusedAdamWStep). NER_NO_CUDA_EXTRAS (cmake -DNER_CUDA_EXTRAS=OFF) turns it off.
#if TORCH_VERSION_MAJOR >= 2 && !defined(NER_NO_CUDA_EXTRAS)
#define NER_HAS_FUSED_ADAMW 1
#else
#define NER_HAS_FUSED_ADAMW 0
#endif

namespace ner::compat {

// softmax(q k^T / sqrt(d) + mask) v, with dropout on the probabilities in training.
// keepMask: [B, 1, 1, T] bool, true where a key may be attended to.
inline torch::Tensor scaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                               const torch::Tensor& v, const torch::Tensor& keepMask,
                                               double dropout, bool training) {
#if NER_HAS_SDPA
  // The fused kernels (memory-efficient / cuDNN attention) on CUDA only: the CPU keeps the explicit path
  // below, whose numbers the CPU parity tests were written against.
  if (q.is_cuda()) return at::scaled_dot_product_attention(q, k, v, keepMask, training ? dropout : 0.0);
#endif
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(q.size(-1)));
  // Same additive bias as HF (the dtype's lowest value), so fully padded keys get exactly zero weight.
  scores = scores.masked_fill(keepMask.logical_not(), std::numeric_limits<float>::lowest());
  auto probs = torch::softmax(scores, -1);
  if (training && dropout > 0) probs = ner::applyDropout(probs, dropout, true);
  return torch::matmul(probs, v);
}

inline bool isOutOfMemory(const c10::Error& e) {
  return std::string(e.what()).find("out of memory") != std::string::npos;
}

}  // namespace ner::compat

namespace ner::compat {

// bf16 autocast on CUDA for the guard's lifetime (the API moved between LibTorch 1.13 and 2.x).
class CudaAutocast {
 public:
  explicit CudaAutocast(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4 || TORCH_VERSION_MAJOR >= 3
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4 || TORCH_VERSION_MAJOR >= 3
    at::autocast::set_autocast_enabled(at::kCUDA, false);
#else
    at::autocast::set_enabled(false);
#endif
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool enabled_;
};

}  // namespace ner::compat
