// The CPU kernels written by hand against the torch ops they replace; exits 1 unless bit-identical.
//  - AdamW (native/adamw.cpp) vs torch::optim::AdamW: several steps on tensors of odd sizes, with
//    weight decay and a clipping coefficient applied as clip_grad_norm_ applies it (g.mul_(coef));
//    also times one step of each on a 30522 x 256 tensor (the BERT word embedding).
//  - the embedding backward (native/encoder.cpp embeddingLookup) vs torch::embedding's, repeated ids.
//  - the CPU dropout (native/dropout.cpp): the share dropped is p within 3 standard deviations, kept
//    values are x / (1 - p) exactly as torch scales them, the gradient is the same mask and scale, the
//    same seed gives the same mask and another seed another one.
// Usage: kernel_check
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "adamw.h"
#include "dropout.h"
#include "encoder.h"

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
  {
    auto weight = torch::randn({50, 24}).requires_grad_(true);
    auto ids = torch::randint(0, 50, {7, 33}, torch::kLong);  // many repeats
    auto upstream = torch::randn({7, 33, 24});
    auto ours = ner::embeddingLookup(weight, ids);
    auto gradOurs = torch::autograd::grad({ours}, {weight}, {upstream})[0];
    auto theirs = torch::embedding(weight, ids);
    auto gradTheirs = torch::autograd::grad({theirs}, {weight}, {upstream})[0];
    const double dOut = maxDiff(ours, theirs), dGrad = maxDiff(gradOurs, gradTheirs);
    std::printf("embedding: max |d out| %.3g, max |d grad| %.3g\n", dOut, dGrad);
    if (dOut != 0 || dGrad != 0) ++failures;
  }
  for (double p : {0.1, 0.5}) {
    const int64_t n = 1 << 20;
    auto x = (torch::rand({n}) + 0.5).requires_grad_(true);  // no zeros: a zero output means dropped
    torch::manual_seed(9);
    auto y = ner::applyDropout(x, p, true);
    auto grad = torch::autograd::grad({y}, {x}, {torch::ones({n})})[0];
    torch::manual_seed(9);
    auto again = ner::applyDropout(x.detach(), p, true);
    auto other = ner::applyDropout(x.detach(), p, true);
    const auto kept = y.detach() != 0;
    const double dropped = 1 - kept.to(torch::kDouble).mean().item<double>();
    const float scale = 1.0f / static_cast<float>(1 - p);
    const bool scaled = torch::equal(y.detach().masked_select(kept), x.detach().masked_select(kept) * scale);
    const bool gradOk = torch::equal(grad, kept.to(torch::kFloat) * scale);
    const bool repeats = torch::equal(again, y.detach()), differs = !torch::equal(other, y.detach());
    const bool rateOk = std::abs(dropped - p) < 3 * std::sqrt(p * (1 - p) / n);
    std::printf("dropout %.1f: dropped %.5f, scaled %d, gradient %d, same seed repeats %d, next draw differs %d\n", p, dropped,
                scaled, gradOk, repeats, differs);
    if (!(rateOk && scaled && gradOk && repeats && differs)) ++failures;
  }
  if (failures) std::printf("FAIL: %d tensors differ\n", failures);
  return failures ? 1 : 0;
}
