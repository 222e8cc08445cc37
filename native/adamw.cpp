#include "adamw.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cfloat>
#include <cmath>

// Built with -O3 -fno-math-errno -ffp-contract=off (CMakeLists.txt): the compiler must not fuse a
// multiply and an add that torch rounds separately. The two that ATen's AVX2 kernels do fuse (add_
// with alpha, vectorised as fmadd; addcmul, contracted by the compiler) are written out as fmaf.

namespace ner {

namespace {

struct Coefficients {
  float decay, beta1, oneMinusBeta1, beta2, oneMinusBeta2, biasCorrection2Sqrt, eps, negStepSize, gradScale;
  bool scaleGrad, applyDecay;
};

// One contiguous chunk. The statements mirror torch::optim::AdamW::step (LibTorch 1.13):
//   p.mul_(1 - lr * wd); m.mul_(b1).add_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2);
//   denom = (v.sqrt() / sqrt(bc2)).add_(eps); p.addcdiv_(m, denom, -lr / bc1)
// with the clipping coefficient applied to g first, as clip_grad_norm_'s g.mul_(coef) does.
inline __attribute__((always_inline)) int updateLoop(float* __restrict p, const float* __restrict g,
                                                     float* __restrict m, float* __restrict v,
                                                     float* __restrict backup, int64_t n, const Coefficients c) {
  int finite = 1;  // an int: a bool reduction keeps GCC from vectorising the loop
  for (int64_t i = 0; i < n; ++i) {
    float grad = g[i];
    if (c.scaleGrad) grad = grad * c.gradScale;
    float w = p[i];
    if (backup) backup[i] = w;
    if (c.applyDecay) w = w * c.decay;
    float mean = m[i] * c.beta1;
    mean = __builtin_fmaf(grad, c.oneMinusBeta1, mean);
    float var = v[i] * c.beta2;
    var = __builtin_fmaf(c.oneMinusBeta2 * grad, grad, var);
    const float denom = std::sqrt(var) / c.biasCorrection2Sqrt + c.eps;
    w = w + c.negStepSize * mean / denom;
    m[i] = mean;
    v[i] = var;
    p[i] = w;
    finite &= static_cast<int>(std::fabs(w) <= FLT_MAX);  // false for NaN too
  }
  return finite;
}

using UpdateChunk = int (*)(float*, const float*, float*, float*, float*, int64_t, const Coefficients);

int updateGeneric(float* p, const float* g, float* m, float* v, float* backup, int64_t n, const Coefficients c) {
  return updateLoop(p, g, m, v, backup, n, c);
}

#if defined(__x86_64__)
// The same loop with AVX2 + FMA (fmaf is then one instruction; without FMA it is a libm call).
__attribute__((target("avx2,fma"))) int updateAvx2(float* p, const float* g, float* m, float* v, float* backup,
                                                   int64_t n, const Coefficients c) {
  return updateLoop(p, g, m, v, backup, n, c);
}
#endif

UpdateChunk pickUpdateChunk() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return updateAvx2;
#endif
  return updateGeneric;
}

const UpdateChunk updateChunk = pickUpdateChunk();

}  // namespace

bool adamwCpuSupports(const at::Tensor& param) {
  return param.device().is_cpu() && param.scalar_type() == at::kFloat && param.is_contiguous();
}

bool adamwStepCpu(at::Tensor& param, const at::Tensor& grad, at::Tensor& expAvg, at::Tensor& expAvgSq,
                  const AdamWScalars& s, at::Tensor* backup) {
  TORCH_CHECK(adamwCpuSupports(param) && adamwCpuSupports(grad) && grad.sizes() == param.sizes(),
              "adamwStepCpu: contiguous float32 CPU tensors of one shape expected");
  TORCH_CHECK(expAvg.is_contiguous() && expAvgSq.is_contiguous() && expAvg.numel() == param.numel() &&
                  expAvgSq.numel() == param.numel(),
              "adamwStepCpu: optimizer state does not match the parameter");
  const double biasCorrection1 = 1 - std::pow(s.beta1, static_cast<double>(s.step));
  const double biasCorrection2 = 1 - std::pow(s.beta2, static_cast<double>(s.step));
  // torch's scalar ops refuse a float32 overflow ("value cannot be converted to type float without
  // overflow"); so does this.
  const double stepSize = s.lr / biasCorrection1;
  TORCH_CHECK(std::fabs(stepSize) <= FLT_MAX && std::fabs(1 - s.lr * s.weightDecay) <= FLT_MAX,
              "value cannot be converted to type float without overflow");
  Coefficients c;
  c.decay = static_cast<float>(1 - s.lr * s.weightDecay);
  c.applyDecay = s.weightDecay != 0;
  c.beta1 = static_cast<float>(s.beta1);
  c.oneMinusBeta1 = static_cast<float>(1 - s.beta1);
  c.beta2 = static_cast<float>(s.beta2);
  c.oneMinusBeta2 = static_cast<float>(1 - s.beta2);
  c.biasCorrection2Sqrt = static_cast<float>(std::sqrt(biasCorrection2));
  c.eps = static_cast<float>(s.eps);
  c.negStepSize = static_cast<float>(-stepSize);
  c.gradScale = static_cast<float>(s.gradScale);
  c.scaleGrad = s.gradScale != 1.0;

  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m = expAvg.data_ptr<float>();
  float* v = expAvgSq.data_ptr<float>();
  float* b = nullptr;
  if (backup) {
    if (!backup->defined() || backup->sizes() != param.sizes() || !backup->is_contiguous()) *backup = at::empty_like(param);
    b = backup->data_ptr<float>();
  }
  std::atomic<bool> finite{true};
  at::parallel_for(0, param.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    if (!updateChunk(p + begin, g + begin, m + begin, v + begin, b ? b + begin : nullptr, end - begin, c)) finite = false;
  });
  return finite.load();
}

}  // namespace ner
