// Dropout whose CPU mask costs a hash per pair of elements instead of a bernoulli draw per element.
// LibTorch 1.13 draws CPU dropout masks with bernoulli_, one generator call per element: ~7% of a
// BERT-mini training step. Here each 64 Ki-element chunk of the mask comes from splitmix64 seeded by
// one draw from torch's default CPU generator (so torch::manual_seed still makes runs repeat, whatever
// the thread count), with P(drop) = p to 2^-32. The masks are not the ones torch::dropout would draw;
// the kept values are scaled by 1 / (1 - p) in float, as torch::dropout scales them. CUDA and other
// dtypes use torch::dropout.
#pragma once
#include <torch/torch.h>

namespace ner {

// A trainer's own stream of dropout seeds (splitmix64 over one 64-bit state): two engines training in
// one process do not share masks, and a resume point stores where the stream is. While a
// DropoutStreamScope is alive on a thread, that thread's dropout seeds come from its stream; without
// one they come from torch's default generator.
struct DropoutStream {
  uint64_t state = 0;
  uint64_t next();
};

class DropoutStreamScope {
 public:
  explicit DropoutStreamScope(DropoutStream* stream);
  ~DropoutStreamScope();
  DropoutStreamScope(const DropoutStreamScope&) = delete;
  DropoutStreamScope& operator=(const DropoutStreamScope&) = delete;

 private:
  DropoutStream* previous_;
};

torch::Tensor applyDropout(const torch::Tensor& input, double p, bool training);

// The module form (no parameters, so checkpoints are unchanged), in place of torch::nn::Dropout.
struct DropoutImpl : torch::nn::Module {
  explicit DropoutImpl(double p) : p(p) {}
  torch::Tensor forward(const torch::Tensor& input) { return applyDropout(input, p, is_training()); }
  double p;
};
TORCH_MODULE(Dropout);

}  // namespace ner
