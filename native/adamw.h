// AdamW for CPU tensors in one pass over memory per parameter. torch::optim::AdamW (like PyTorch 1.13's
// torch.optim.AdamW on the CPU) runs ~8 separate elementwise ops per parameter, each reading and writing
// the whole tensor; for BERT-mini most of the weights are the 30k x 256 word embedding, whose dense
// gradient makes that ~1 GB of memory traffic per step. Here each element is loaded once, updated in
// registers with the same float operations in the same order (so the result equals torch's to the
// last bit where the compiler keeps the order, which the tests check), and stored once.
#pragma once
#include <ATen/core/Tensor.h>

namespace ner {

struct AdamWScalars {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.0;
  int64_t step = 1;          // the step count after this update (1 on the first)
  double gradScale = 1.0;    // the gradient-clipping coefficient, applied to the gradient first
};

// Updates param, expAvg and expAvgSq in place (float32, contiguous, CPU, same shape; grad likewise; the
// moments as torch::optim::AdamW allocates them, zeros_like the parameter).
// When `backup` is defined it receives the weights as they were before the update (for rolling back).
// Returns false if any updated weight is not finite (the update is still written).
bool adamwStepCpu(at::Tensor& param, const at::Tensor& grad, at::Tensor& expAvg, at::Tensor& expAvgSq,
                  const AdamWScalars& s, at::Tensor* backup);

// Whether adamwStepCpu can take this parameter (else the caller uses torch::optim::AdamW).
bool adamwCpuSupports(const at::Tensor& param);

}  // namespace ner
