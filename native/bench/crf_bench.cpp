// CRF micro-benchmark and numerical checks (native/crf.cpp).
//   crf_bench               B=32, T=128, K in {9, 120}: forward+backward of crfLogLikelihood (hand-written
//                           backward) vs autogradLoopLogLikelihood (pytorch-crf style), and Viterbi
//   crf_bench --gradcheck   hand-written gradient vs central finite differences (double) and the autograd
//                           loop; llh and Viterbi vs brute-force enumeration of all paths; input validation
//   crf_bench --fixture F   pytorch-crf's numbers (../shared/fixtures/crf.json, as text: see bench-crf.mjs)
// The check modes exit non-zero on any mismatch.
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "crf.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

using torch::Tensor;

namespace {

// The benchmark's baseline and a second reference for the checks: the plain per-time-step loop that
// autograd differentiates (a line-by-line port of torchcrf.CRF._compute_score / _compute_normalizer,
// time-major). Same result as ner::crfLogLikelihood. Inputs as the bench builds them (valid shapes).
Tensor autogradLoopLogLikelihood(const Tensor& emissions, const Tensor& mask, const Tensor& tags, const Tensor& trans,
                                 const Tensor& start, const Tensor& end) {
  const int64_t B = emissions.size(0), T = emissions.size(1);
  const auto e = emissions.transpose(0, 1), y = tags.to(torch::kLong).t();  // [T, B, K], [T, B]
  const auto m = mask.to(torch::kBool).t(), mf = m.to(e.scalar_type());
  const auto batch = torch::arange(B, y.options());

  auto score = start.index({y[0]}) + e[0].index({batch, y[0]});
  for (int64_t i = 1; i < T; ++i) {
    score = score + trans.index({y[i - 1], y[i]}) * mf[i];
    score = score + e[i].index({batch, y[i]}) * mf[i];
  }
  const auto seqEnds = m.to(torch::kLong).sum(0) - 1;
  score = score + end.index({y.index({seqEnds, batch})});

  auto norm = start + e[0];
  for (int64_t i = 1; i < T; ++i) {
    const auto next = torch::logsumexp(norm.unsqueeze(2) + trans + e[i].unsqueeze(1), {1});
    norm = torch::where(m[i].unsqueeze(1), next, norm);
  }
  return score - torch::logsumexp(norm + end, {1});
}

struct Problem {
  Tensor emissions, mask, tags, trans, start, end;
};

// Random CRF inputs; with randomLengths, sequence 0 is full, sequence 1 has length 1, the rest random.
Problem randomProblem(int64_t B, int64_t T, int64_t K, torch::Dtype dtype, bool randomLengths) {
  auto opt = torch::TensorOptions().dtype(dtype);
  auto lengths = torch::full({B}, T, torch::kLong);
  if (randomLengths) {
    lengths = torch::randint(1, T + 1, {B}, torch::kLong);
    lengths[0] = T;
    if (B > 1) lengths[1] = 1;
  }
  auto mask = torch::arange(T).unsqueeze(0) < lengths.unsqueeze(1);
  // -1 at masked positions: they must be ignored (like the -100 padding labels of a real batch).
  auto tags = torch::randint(0, K, {B, T}, torch::kLong).masked_fill(mask.logical_not(), -1);
  return {torch::randn({B, T, K}, opt), mask, tags, torch::randn({K, K}, opt) * 0.5, torch::randn({K}, opt) * 0.5,
          torch::randn({K}, opt) * 0.5};
}

double maxAbsDiff(const Tensor& a, const Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

template <class F>
double timeMs(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

using LlhFn = std::function<Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&)>;

// Gradients of sum_b weight_b * llh_b with respect to (emissions, transitions, start, end).
std::vector<Tensor> gradients(const LlhFn& llh, const Problem& p, const Tensor& weight) {
  std::vector<Tensor> leaves;
  for (const auto& t : {p.emissions, p.trans, p.start, p.end}) leaves.push_back(t.detach().clone().requires_grad_());
  (llh(leaves[0], leaves[1], leaves[2], leaves[3]) * weight).sum().backward();
  std::vector<Tensor> g;
  for (auto& l : leaves) g.push_back(l.grad().defined() ? l.grad() : torch::zeros_like(l));  // T=1: no transition
  return g;
}

// ---------------------------------------------------------------------------------------------- bench
int bench() {
#ifdef __GLIBC__
  // Keep freed memory in the heap: otherwise glibc hands the autograd loop's hundreds of MB of saved
  // [B, K, K] tensors (K=120) back to the OS after every run, and page faults dominate its time, more or
  // less depending on the machine's load. This favours the baseline: the ratios below are conservative.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  std::printf("crf_bench: LibTorch %s, %d intra-op threads, CPU, fp32; B=32 T=128, full masks; median ms\n",
              TORCH_VERSION, at::get_num_threads());
  torch::manual_seed(0);
  for (int64_t K : {9, 120}) {
    const int64_t B = 32, T = 128;
    const auto p = randomProblem(B, T, K, torch::kFloat, false);
    const auto ones = torch::ones({B});
    LlhFn ours = [&](const Tensor& e, const Tensor& tr, const Tensor& s, const Tensor& en) {
      return ner::crfLogLikelihood(e, p.mask, p.tags, tr, s, en);
    };
    LlhFn loop = [&](const Tensor& e, const Tensor& tr, const Tensor& s, const Tensor& en) {
      return autogradLoopLogLikelihood(e, p.mask, p.tags, tr, s, en);
    };
    // Interleaved runs, so that load from other processes hits every variant alike; each ratio is the
    // median of the per-round ratios. "fwd" is the log-likelihood alone, without autograd (evaluation).
    auto fwdOnly = [&](const LlhFn& f) {
      torch::NoGradGuard noGrad;
      f(p.emissions, p.trans, p.start, p.end);
    };
    std::vector<std::function<void()>> variants = {
        [&] { gradients(ours, p, ones); }, [&] { gradients(loop, p, ones); }, [&] { fwdOnly(ours); },
        [&] { fwdOnly(loop); }, [&] { ner::crfViterbiDecode(p.emissions, p.mask, p.trans, p.start, p.end); }};
    std::vector<std::vector<double>> ms(variants.size());
    std::vector<double> trainRatio, fwdRatio;
    for (int round = 0; round < 3 + (K > 32 ? 15 : 40); ++round) {
      std::vector<double> t;
      for (auto& v : variants) t.push_back(timeMs(v));
      if (round < 3) continue;  // warm-up
      for (size_t i = 0; i < t.size(); ++i) ms[i].push_back(t[i]);
      trainRatio.push_back(t[1] / t[0]);
      fwdRatio.push_back(t[3] / t[2]);
    }
    const double llhDiff = maxAbsDiff(ours(p.emissions, p.trans, p.start, p.end), loop(p.emissions, p.trans, p.start, p.end));
    const auto g1 = gradients(ours, p, ones), g2 = gradients(loop, p, ones);
    double gradDiff = 0;  // relative to the gradient's scale: d/dtransitions sums B*T counts
    for (size_t i = 0; i < g1.size(); ++i)
      gradDiff = std::max(gradDiff, maxAbsDiff(g1[i], g2[i]) / g2[i].abs().max().item<double>());
    std::printf("K=%-3lld | llh fwd+bwd: hand-written %7.2f ms, autograd loop %7.2f ms, x%.2f | fwd only: %7.2f vs"
                " %7.2f ms, x%.2f | viterbi %6.2f ms | max|dllh| %.0e, max rel. grad diff %.0e\n",
                (long long)K, median(ms[0]), median(ms[1]), median(trainRatio), median(ms[2]), median(ms[3]),
                median(fwdRatio), median(ms[4]), llhDiff, gradDiff);
  }
  return 0;
}

// ------------------------------------------------------------------------------------------ checks
struct Checker {
  bool ok = true;
  void expect(const std::string& what, double err, double tol) {
    const bool pass = err <= tol;  // NaN fails too
    ok = ok && pass;
    std::printf("  %-58s %9.2e (tol %.0e) %s\n", what.c_str(), err, tol, pass ? "ok" : "FAIL");
  }
  void expectThrow(const std::string& needle, const std::function<void()>& f) {
    std::string got = "no exception";
    try {
      f();
    } catch (const std::invalid_argument& e) {
      got = e.what();
    } catch (const std::exception& e) {
      got = std::string("not std::invalid_argument: ") + e.what();
    }
    const bool pass = got.find(needle) != std::string::npos && got.rfind("crf: ", 0) == 0;
    ok = ok && pass;
    std::printf("  throws \"%s\": %s -> %s\n", needle.c_str(), pass ? "ok" : "FAIL", got.c_str());
  }
};

// Exhaustive reference for one sequence: log Z, the gold score and the best path (first max on ties).
struct Exact {
  double logZ, gold;
  std::vector<int64_t> best;
};
Exact enumerate(const Problem& p, const ner::CrfConstraints& c, int64_t b) {
  const int64_t K = p.emissions.size(2), L = p.mask[b].sum().item<int64_t>();
  auto tr = p.trans.clone(), st = p.start.clone(), en = p.end.clone();
  if (c.defined()) tr += c.transitions, st += c.start, en += c.end;
  const auto eb = p.emissions[b];
  auto E = eb.accessor<double, 2>();
  auto Tr = tr.accessor<double, 2>();
  auto S = st.accessor<double, 1>(), N = en.accessor<double, 1>();
  auto score = [&](const std::vector<int64_t>& y) {
    double s = S[y[0]] + N[y[L - 1]];
    for (int64_t t = 0; t < L; ++t) s += E[t][y[t]] + (t > 0 ? Tr[y[t - 1]][y[t]] : 0.0);
    return s;
  };
  std::vector<double> all;
  std::vector<int64_t> y(L, 0), best;
  double bestScore = -INFINITY;
  // Lexicographic order with position 0 most significant, as the backtrack's first-index tie rule
  // cannot be matched in general; random scores make ties improbable anyway.
  for (;;) {
    const double s = score(y);
    all.push_back(s);
    if (s > bestScore) bestScore = s, best = y;
    int64_t t = L - 1;
    while (t >= 0 && ++y[t] == K) y[t--] = 0;
    if (t < 0) break;
  }
  const double m = *std::max_element(all.begin(), all.end());
  double z = 0;
  for (double s : all) z += std::exp(s - m);
  std::vector<int64_t> gold(L);
  for (int64_t t = 0; t < L; ++t) gold[t] = p.tags[b][t].item<int64_t>();
  return {m + std::log(z), score(gold), best};
}

int gradcheck() {
  torch::manual_seed(1234);
  Checker ck;
  struct Case { int64_t B, T, K; bool constrained; };
  for (const Case cs : {Case{4, 5, 3, false}, Case{5, 6, 4, true}, Case{3, 1, 4, false}, Case{2, 4, 1, false},
                        Case{6, 7, 3, true}}) {
    std::printf("B=%lld T=%lld K=%lld constraints=%s (double)\n", (long long)cs.B, (long long)cs.T, (long long)cs.K,
                cs.constrained ? "yes" : "no");
    const auto p = randomProblem(cs.B, cs.T, cs.K, torch::kDouble, true);
    ner::CrfConstraints c;
    if (cs.constrained) {  // forbid about a third of the transitions, one start and one end tag
      c.transitions = (torch::rand({cs.K, cs.K}) < 0.33).to(torch::kDouble) * -1e4;
      c.start = torch::zeros({cs.K}, torch::kDouble).index_fill_(0, torch::tensor({cs.K - 1}), -1e4);
      c.end = torch::zeros({cs.K}, torch::kDouble).index_fill_(0, torch::tensor({0}), -1e4);
    }
    const auto weight = torch::randn({cs.B}, torch::kDouble);  // a grad_output that differs per sequence
    LlhFn ours = [&](const Tensor& e, const Tensor& tr, const Tensor& s, const Tensor& en) {
      return ner::crfLogLikelihood(e, p.mask, p.tags, tr, s, en, c);
    };
    LlhFn loop = [&](const Tensor& e, const Tensor& tr, const Tensor& s, const Tensor& en) {
      if (!c.defined()) return autogradLoopLogLikelihood(e, p.mask, p.tags, tr, s, en);
      return autogradLoopLogLikelihood(e, p.mask, p.tags, tr + c.transitions, s + c.start, en + c.end);
    };
    const auto llh = ours(p.emissions, p.trans, p.start, p.end);
    const auto g = gradients(ours, p, weight), gLoop = gradients(loop, p, weight);

    // Central differences of f = sum_b weight_b * llh_b, one parameter at a time.
    const char* names[] = {"emissions", "transitions", "start", "end"};
    std::vector<Tensor> params = {p.emissions.clone(), p.trans.clone(), p.start.clone(), p.end.clone()};
    auto f = [&] { return (ours(params[0], params[1], params[2], params[3]) * weight).sum().item<double>(); };
    for (size_t k = 0; k < params.size(); ++k) {
      auto flat = params[k].view({-1});
      auto fd = torch::empty_like(flat);
      const double h = 1e-4;  // scores reach -1e4 with constraints: keep rounding error ~1e-8
      for (int64_t i = 0; i < flat.numel(); ++i) {
        const double v = flat[i].item<double>();
        flat[i] = v + h;
        const double up = f();
        flat[i] = v - h;
        const double down = f();
        flat[i] = v;
        fd[i] = (up - down) / (2 * h);
      }
      ck.expect(std::string("d/d") + names[k] + " vs finite differences", maxAbsDiff(g[k].view({-1}), fd), 1e-6);
      ck.expect(std::string("d/d") + names[k] + " vs autograd loop", maxAbsDiff(g[k], gLoop[k]), 1e-9);
    }
    ck.expect("d/demissions at masked positions", g[0].masked_select(p.mask.logical_not().unsqueeze(2)).abs().sum().item<double>(), 0);
    ck.expect("llh vs autograd loop", maxAbsDiff(llh, loop(p.emissions, p.trans, p.start, p.end)), 1e-9);

    const auto path = ner::crfViterbiDecode(p.emissions, p.mask, p.trans, p.start, p.end, c);
    double llhErr = 0, pathErr = 0;
    for (int64_t b = 0; b < cs.B; ++b) {
      const auto ex = enumerate(p, c, b);
      llhErr = std::max(llhErr, std::abs(llh[b].item<double>() - (ex.gold - ex.logZ)));
      for (int64_t t = 0; t < cs.T; ++t)
        pathErr += path[b][t].item<int64_t>() != (t < (int64_t)ex.best.size() ? ex.best[t] : -1);
    }
    ck.expect("llh vs brute-force enumeration", llhErr, 1e-9);
    ck.expect("viterbi positions differing from brute force", pathErr, 0);
  }

  std::printf("fp32 / bf16 inputs, B=8 T=40 K=9\n");
  {
    const auto p = randomProblem(8, 40, 9, torch::kDouble, true);
    const auto ref = ner::crfLogLikelihood(p.emissions, p.mask, p.tags, p.trans, p.start, p.end);
    auto e32 = p.emissions.to(torch::kFloat).requires_grad_();
    const auto llh32 = ner::crfLogLikelihood(e32, p.mask, p.tags, p.trans.to(torch::kFloat), p.start.to(torch::kFloat),
                                             p.end.to(torch::kFloat));
    llh32.sum().backward();
    ck.expect("fp32 llh vs double", maxAbsDiff(llh32, ref), 1e-4);
    const auto loop32 = autogradLoopLogLikelihood(e32, p.mask, p.tags, p.trans.to(torch::kFloat),
                                                          p.start.to(torch::kFloat), p.end.to(torch::kFloat));
    ck.expect("fp32 llh vs autograd loop", maxAbsDiff(llh32, loop32), 1e-4);
    auto e16 = p.emissions.to(torch::kBFloat16).requires_grad_();
    const auto llh16 = ner::crfLogLikelihood(e16, p.mask, p.tags, p.trans.to(torch::kFloat), p.start.to(torch::kFloat),
                                             p.end.to(torch::kFloat));
    llh16.sum().backward();
    ck.expect("bf16 emissions: llh is fp32, grad is bf16",
              llh16.scalar_type() == torch::kFloat && e16.grad().scalar_type() == torch::kBFloat16 ? 0 : 1, 0);
    ck.expect("bf16 grad vs fp32 grad", maxAbsDiff(e16.grad(), e32.grad()), 2e-2);
  }

  std::printf("fp32 stability: emissions x30, half the transitions forbidden, B=6 T=60 K=9\n");
  {
    auto p = randomProblem(6, 60, 9, torch::kDouble, true);
    p.emissions *= 30;
    ner::CrfConstraints c;
    c.transitions = (torch::rand({9, 9}, torch::kDouble) < 0.5).to(torch::kDouble) * -1e4;
    const auto ones = torch::ones({6}, torch::kDouble);
    LlhFn ours = [&](const Tensor& e, const Tensor& tr, const Tensor& s, const Tensor& en) {
      return ner::crfLogLikelihood(e, p.mask, p.tags, tr, s, en, c);
    };
    const auto ref = gradients(ours, p, ones);
    const Problem p32{p.emissions.to(torch::kFloat), p.mask, p.tags, p.trans.to(torch::kFloat),
                      p.start.to(torch::kFloat), p.end.to(torch::kFloat)};
    const auto g32 = gradients(ours, p32, ones.to(torch::kFloat));
    double err = 0;
    for (size_t k = 0; k < ref.size(); ++k) err = std::max(err, maxAbsDiff(g32[k], ref[k]));
    ck.expect("fp32 gradients vs double (all finite)", err, 1e-3);
  }

  std::printf("empty batch\n");
  {
    const auto p = randomProblem(0, 3, 4, torch::kFloat, false);
    auto e = p.emissions.clone().requires_grad_();
    const auto llh = ner::crfLogLikelihood(e, p.mask, p.tags, p.trans, p.start, p.end);
    llh.sum().backward();
    const auto path = ner::crfViterbiDecode(p.emissions, p.mask, p.trans, p.start, p.end);
    ck.expect("B=0: llh [0], grad [0, 3, 4], path [0, 3]",
              llh.numel() == 0 && e.grad().sizes() == e.sizes() && path.size(0) == 0 && path.size(1) == 3 ? 0 : 1, 0);
  }

  std::printf("input validation\n");
  {
    const auto p = randomProblem(3, 4, 5, torch::kFloat, true);
    auto llhWith = [&](const Tensor& e, const Tensor& m, const Tensor& y, const Tensor& tr) {
      return [=] { ner::crfLogLikelihood(e, m, y, tr, p.start, p.end); };
    };
    ck.expectThrow("emissions must be [B, T, K], got [4, 5] (Float)", llhWith(p.emissions[0], p.mask, p.tags, p.trans));
    ck.expectThrow("mask must be [B, T]", llhWith(p.emissions, p.mask.t(), p.tags, p.trans));
    auto m0 = p.mask.clone();
    m0[2][0] = false;
    ck.expectThrow("mask[:, 0] must be 1 for every sequence", llhWith(p.emissions, m0, p.tags, p.trans));
    auto holes = p.mask.clone();
    holes[0][2] = false;
    ck.expectThrow("left-aligned", llhWith(p.emissions, holes, p.tags, p.trans));
    auto bad = p.tags.clone();
    bad[0][3] = 5;
    ck.expectThrow("tags must lie in [0, 5)", llhWith(p.emissions, p.mask, bad, p.trans));
    ck.expectThrow("tags must be a bool or integer tensor", llhWith(p.emissions, p.mask, p.tags.to(torch::kFloat), p.trans));
    ck.expectThrow("transitions must be [K, K] with K = 5", llhWith(p.emissions, p.mask, p.tags, p.trans.t()[0]));
    ck.expectThrow("mask[:, 0] must be 1", [&] { ner::crfViterbiDecode(p.emissions, m0, p.trans, p.start, p.end); });
  }
  std::printf(ck.ok ? "gradcheck: all checks passed\n" : "gradcheck: FAILED\n");
  return ck.ok ? 0 : 1;
}

// Text fixture: "B T K", then emissions, mask, tags, transitions, start, end, log_likelihood,
// grad_emissions_of_sum_llh, grad_transitions_of_sum_llh (row-major), then per sequence: length, path.
int fixture(const std::string& file) {
  std::ifstream in(file);
  int64_t B = 0, T = 0, K = 0;
  if (!(in >> B >> T >> K)) {
    std::fprintf(stderr, "crf_bench: cannot read %s\n", file.c_str());
    return 2;
  }
  auto read = [&](std::vector<int64_t> shape, torch::Dtype dtype) {
    auto t = torch::empty(shape, torch::kDouble);
    auto flat = t.view({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      double v;
      if (!(in >> v)) throw std::runtime_error("fixture: truncated");
      flat[i] = v;
    }
    return t.to(dtype);
  };
  const auto f = torch::kFloat;
  const auto e = read({B, T, K}, f), mask = read({B, T}, torch::kBool), tags = read({B, T}, torch::kLong);
  const auto trans = read({K, K}, f), start = read({K}, f), end = read({K}, f);
  const auto llhRef = read({B}, f), gradERef = read({B, T, K}, f), gradTRef = read({K, K}, f);
  const Problem p{e, mask, tags, trans, start, end};

  Checker ck;
  std::printf("fixture %s: B=%lld T=%lld K=%lld (fp32)\n", file.c_str(), (long long)B, (long long)T, (long long)K);
  const auto ones = torch::ones({B});
  LlhFn ours = [&](const Tensor& e, const Tensor& tr, const Tensor& s, const Tensor& en) {
    return ner::crfLogLikelihood(e, mask, tags, tr, s, en);
  };
  LlhFn loop = [&](const Tensor& e, const Tensor& tr, const Tensor& s, const Tensor& en) {
    return autogradLoopLogLikelihood(e, mask, tags, tr, s, en);
  };
  ck.expect("llh vs pytorch-crf", maxAbsDiff(ours(e, trans, start, end), llhRef), 1e-4);
  ck.expect("autograd loop llh vs pytorch-crf", maxAbsDiff(loop(e, trans, start, end), llhRef), 1e-4);
  const auto g = gradients(ours, p, ones), gLoop = gradients(loop, p, ones);
  ck.expect("d sum(llh) / d emissions vs pytorch-crf", maxAbsDiff(g[0], gradERef), 1e-4);
  ck.expect("d sum(llh) / d transitions vs pytorch-crf", maxAbsDiff(g[1], gradTRef), 1e-4);
  ck.expect("autograd loop d/demissions vs pytorch-crf", maxAbsDiff(gLoop[0], gradERef), 1e-4);
  ck.expect("autograd loop d/dtransitions vs pytorch-crf", maxAbsDiff(gLoop[1], gradTRef), 1e-4);

  const auto path = ner::crfViterbiDecode(e, mask, trans, start, end);
  int64_t wrong = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = 0;
    in >> len;
    for (int64_t t = 0; t < T; ++t) {
      int64_t want = -1;
      if (t < len) in >> want;
      wrong += path[b][t].item<int64_t>() != want;
    }
  }
  if (!in) throw std::runtime_error("fixture: truncated viterbi paths");
  ck.expect("viterbi positions differing from pytorch-crf", (double)wrong, 0);
  std::printf(ck.ok ? "fixture: all checks passed\n" : "fixture: FAILED\n");
  return ck.ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode.empty()) return bench();
    if (mode == "--gradcheck") return gradcheck();
    if (mode == "--fixture" && argc > 2) return fixture(argv[2]);
    std::fprintf(stderr, "usage: crf_bench [--gradcheck | --fixture FILE]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crf_bench: %s\n", e.what());
    return 3;
  }
}
