#include "dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <mutex>

namespace ner {

namespace {

constexpr int64_t kChunk = 1 << 16;

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

thread_local DropoutStream* currentStream = nullptr;

// One seed per dropout call: from the scoped stream, else torch's default CPU generator.
uint64_t nextSeed() {
  if (currentStream) return currentStream->next();
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get<at::CPUGeneratorImpl>()->random64();
}

struct CpuDropout : torch::autograd::Function<CpuDropout> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input, double p) {
    auto x = input.contiguous();
    auto out = torch::empty_like(x);
    auto mask = torch::empty(x.sizes(), x.options().dtype(torch::kUInt8));
    const uint64_t seed = nextSeed();
    const uint32_t threshold = static_cast<uint32_t>(p * 4294967296.0);  // drop when u < threshold
    const float scale = 1.0f / static_cast<float>(1 - p);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    uint8_t* m = mask.data_ptr<uint8_t>();
    const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t chunk = begin; chunk < end; ++chunk) {
        uint64_t state = seed ^ (static_cast<uint64_t>(chunk) * 0xD1B54A32D192ED03ULL);
        const int64_t lo = chunk * kChunk, hi = std::min(n, lo + kChunk);
        for (int64_t i = lo; i < hi; i += 2) {
          const uint64_t bits = splitmix64(state);
          const uint8_t k0 = static_cast<uint32_t>(bits) >= threshold, k1 = static_cast<uint32_t>(bits >> 32) >= threshold;
          m[i] = k0;
          o[i] = k0 ? in[i] * scale : 0.0f;
          if (i + 1 < hi) {
            m[i + 1] = k1;
            o[i + 1] = k1 ? in[i + 1] * scale : 0.0f;
          }
        }
      }
    });
    ctx->save_for_backward({mask});
    ctx->saved_data["scale"] = static_cast<double>(scale);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto mask = ctx->get_saved_variables()[0];
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    auto g = grads[0].contiguous();
    auto out = torch::empty_like(g);
    const float* gi = g.data_ptr<float>();
    const uint8_t* m = mask.data_ptr<uint8_t>();
    float* o = out.data_ptr<float>();
    at::parallel_for(0, g.numel(), kChunk, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) o[i] = m[i] ? gi[i] * scale : 0.0f;
    });
    return {out, torch::Tensor()};
  }
};

}  // namespace

uint64_t DropoutStream::next() { return splitmix64(state); }

DropoutStreamScope::DropoutStreamScope(DropoutStream* stream) : previous_(currentStream) { currentStream = stream; }
DropoutStreamScope::~DropoutStreamScope() { currentStream = previous_; }

torch::Tensor applyDropout(const torch::Tensor& input, double p, bool training) {
  if (!training || p <= 0) return input;
  if (p < 1 && input.is_cpu() && input.scalar_type() == torch::kFloat) return CpuDropout::apply(input, p);
  if (currentStream && input.is_cpu()) {
    // Other CPU dtypes (double, in the gradient checks): torch's mask, from a generator seeded by the stream.
    if (p >= 1) return input * 0;
    auto generator = at::make_generator<at::CPUGeneratorImpl>(currentStream->next());
    auto keep = torch::empty_like(input).bernoulli_(1 - p, generator);
    return input * keep / (1 - p);
  }
  return torch::dropout(input, p, training);  // CUDA: the trainer seeds the device generator from its stream each step
}

}  // namespace ner
