// Linear-chain CRF with the semantics of pytorch-crf 0.7 (torchcrf.CRF, batch_first=True,
// reduction='none'): score(y) = start[y0] + sum_t E[t, y_t] + sum_{t>=1} trans[y_{t-1}, y_t] + end[y_last],
// llh = score(gold) - logZ. Every recursion is batched over B; only the time loop remains.
#include "crf.h"

#include <limits>
#include <sstream>
#include <stdexcept>

namespace ner {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument("crf: " + msg); }

std::string shapeOf(const Tensor& t) {
  if (!t.defined()) return "an undefined tensor";
  std::ostringstream s;
  s << t.sizes() << " (" << t.scalar_type() << ")";
  return s.str();
}

bool isIndexType(const Tensor& t) {
  return t.scalar_type() == torch::kBool || at::isIntegralType(t.scalar_type(), /*includeBool=*/false);
}

// Validates shapes, dtypes and devices. Value checks (mask layout, tag range) read the data on the
// host, so they run only for CPU tensors: on CUDA they would sync every training step.
void validate(const Tensor& emissions, const Tensor& mask, const Tensor* tags, const Tensor& transitions,
              const Tensor& start, const Tensor& end) {
  if (!emissions.defined() || emissions.dim() != 3) fail("emissions must be [B, T, K], got " + shapeOf(emissions));
  if (!emissions.is_floating_point()) fail("emissions must be floating point, got " + shapeOf(emissions));
  const int64_t B = emissions.size(0), T = emissions.size(1), K = emissions.size(2);
  if (T < 1 || K < 1) fail("emissions need at least one time step and one tag, got " + shapeOf(emissions));
  const auto dev = emissions.device();
  auto checkIndex = [&](const Tensor& t, const char* name) {
    if (!t.defined() || t.dim() != 2 || t.size(0) != B || t.size(1) != T)
      fail(std::string(name) + " must be [B, T] = [" + std::to_string(B) + ", " + std::to_string(T) +
           "] like the emissions, got " + shapeOf(t));
    if (!isIndexType(t)) fail(std::string(name) + " must be a bool or integer tensor, got " + shapeOf(t));
    if (t.device() != dev) fail(std::string(name) + " must be on the emissions' device");
  };
  auto checkParam = [&](const Tensor& t, std::vector<int64_t> shape, const char* name) {
    if (!t.defined() || t.sizes() != c10::IntArrayRef(shape))
      fail(std::string(name) + " must be " + (shape.size() == 2 ? "[K, K]" : "[K]") + " with K = " +
           std::to_string(K) + ", got " + shapeOf(t));
    if (!t.is_floating_point()) fail(std::string(name) + " must be floating point, got " + shapeOf(t));
    if (t.device() != dev) fail(std::string(name) + " must be on the emissions' device");
  };
  checkIndex(mask, "mask");
  if (tags) checkIndex(*tags, "tags");
  checkParam(transitions, {K, K}, "transitions");
  checkParam(start, {K}, "startTransitions");
  checkParam(end, {K}, "endTransitions");
  if (!mask.is_cpu() || B == 0) return;
  const auto on = mask.ne(0);
  if (!on.select(1, 0).all().item<bool>()) fail("mask[:, 0] must be 1 for every sequence");
  // The gold path and the backtrack take the last tag at length-1, so holes would be misread.
  if (T > 1 && (on.slice(1, 1) & on.slice(1, 0, T - 1).logical_not()).any().item<bool>())
    fail("mask must be left-aligned (no 1 after a 0 within a sequence)");
  if (tags && tags->is_cpu()) {
    const auto valid = tags->masked_select(on);
    if (valid.numel() > 0 && (valid.lt(0).any().item<bool>() || valid.ge(K).any().item<bool>()))
      fail("tags must lie in [0, " + std::to_string(K) + ") where mask is 1, got values in [" +
           std::to_string(valid.min().item<int64_t>()) + ", " + std::to_string(valid.max().item<int64_t>()) + "]");
  }
}

// double stays double (gradient checks); fp32, bf16 and half all run in fp32.
torch::ScalarType computeType(const Tensor& emissions) {
  return emissions.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// Adds the constraint masks (constants: no gradient flows into them).
Tensor constrained(const Tensor& p, const Tensor& c, std::vector<int64_t> shape, const char* name) {
  if (!c.defined() || c.numel() == 0) return p;
  if (c.sizes() != c10::IntArrayRef(shape)) fail(std::string("constraints.") + name + " must match, got " + shapeOf(c));
  return p + c.detach().to(p.options());
}

struct Inputs {
  Tensor emissions, mask, tags, trans, start, end;  // compute dtype; mask bool; tags int64 with 0 where masked
};

Inputs prepare(const Tensor& emissions, const Tensor& mask, const Tensor* tags, const Tensor& transitions,
               const Tensor& start, const Tensor& end, const CrfConstraints& c) {
  validate(emissions, mask, tags, transitions, start, end);
  const auto ct = computeType(emissions);
  const int64_t K = emissions.size(2);
  Inputs in;
  in.emissions = emissions.to(ct);
  in.mask = mask.scalar_type() == torch::kBool ? mask : mask.ne(0);
  // Masked-out tags may be anything (e.g. -100 padding labels): make them a harmless index.
  if (tags) in.tags = tags->to(torch::kLong).masked_fill(in.mask.logical_not(), 0);
  in.trans = constrained(transitions.to(ct), c.transitions, {K, K}, "transitions");
  in.start = constrained(start.to(ct), c.start, {K}, "start");
  in.end = constrained(end.to(ct), c.end, {K}, "end");
  return in;
}

// Tag of each sequence's last unmasked position, [B].
Tensor lastTags(const Tensor& tags, const Tensor& mask) {
  auto lastIndex = mask.sum(1).sub_(1).unsqueeze(1);
  return tags.gather(1, lastIndex).squeeze(1);
}

// Flat index trans.view(-1)[y_{t-1} * K + y_t] of each gold transition, [B, T-1].
Tensor pairIndex(const Tensor& tags, int64_t K) {
  const int64_t T = tags.size(1);
  return tags.slice(1, 0, T - 1) * K + tags.slice(1, 1);
}

// Gold path score, vectorised over time (no loop): [B].
Tensor goldScore(const Inputs& in) {
  const int64_t T = in.tags.size(1), K = in.emissions.size(2);
  const auto maskf = in.mask.to(in.emissions.scalar_type());
  auto score = in.start.index_select(0, in.tags.select(1, 0)) +
               (in.emissions.gather(2, in.tags.unsqueeze(2)).squeeze(2) * maskf).sum(1) +
               in.end.index_select(0, lastTags(in.tags, in.mask));
  if (T > 1) score += (in.trans.reshape(-1).take(pairIndex(in.tags, K)) * maskf.slice(1, 1)).sum(1);
  return score;
}

// logsumexp over the last dim, consuming x (a temporary). Same maths as torch::logsumexp, which on
// CPU (1.13) is several times slower for these [B, K, K] shapes; the clamp keeps all -inf rows at -inf.
Tensor logsumexpLast_(Tensor x) {
  auto m = x.amax(-1, /*keepdim=*/true).clamp_min_(std::numeric_limits<float>::lowest());
  return x.sub_(m).exp_().sum(-1).log_().add_(m.squeeze(-1));
}

// llh = gold - logZ, logZ by the forward algorithm; backward written by hand (forward-backward marginals).
// The [B, K, K] step tensors are laid out [b, j (next tag), i (previous tag)] with transT[j, i] =
// trans[i, j], so the reduction over the previous tag runs along the contiguous last dim.
struct CrfLlhFunction : public torch::autograd::Function<CrfLlhFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& emissions, const Tensor& trans, const Tensor& start,
                        const Tensor& end, const Tensor& mask, const Tensor& tags) {
    const int64_t B = emissions.size(0), T = emissions.size(1), K = emissions.size(2);
    const auto eT = emissions.transpose(0, 1).contiguous();  // [T, B, K]: one contiguous slice per step
    const auto mT = mask.t().unsqueeze(2);                   // [T, B, 1]
    const auto transT = trans.t().contiguous();
    // alpha_t[b, j] = log sum of the scores of paths ending in j at t, minus a per-sequence shift
    // (its running max) so that it stays O(1) instead of growing with t: fp32 keeps its precision.
    // Held past each length (pytorch-crf). lse_t[b, j] = logsumexp_i(alpha_{t-1}[b, i] + trans[i, j]).
    // Both are kept for the backward, where the shifts cancel.
    auto alphas = torch::empty({T, B, K}, emissions.options());
    auto lses = torch::empty({T, B, K}, emissions.options());
    auto first = start + eT[0];
    auto shift = first.amax(1, /*keepdim=*/true);  // [B, 1]: the sum of the shifts taken so far
    alphas[0].copy_(first - shift);
    auto scratch = torch::empty({B, K, K}, emissions.options());  // reused: no 1.8 MB malloc per step at K=120
    for (int64_t t = 1; t < T; ++t) {
      const auto prev = alphas[t - 1];
      const auto lse = logsumexpLast_(at::add_out(scratch, prev.unsqueeze(1), transT));  // [B, j, i] -> [B, j]
      lses[t].copy_(lse);
      auto next = lse + eT[t];
      const auto step = next.amax(1, /*keepdim=*/true).mul_(mT[t]);  // no shift past the length
      alphas[t].copy_(torch::where(mT[t], next.sub_(step), prev));
      shift += step;
    }
    const auto logZ = torch::logsumexp(alphas[T - 1] + end, {1}) + shift.squeeze(1);
    const auto gold = goldScore({emissions, mask, tags, trans, start, end});
    ctx->save_for_backward({end});
    ctx->saved_data["transT"] = transT;
    ctx->saved_data["alphas"] = alphas;
    ctx->saved_data["lses"] = lses;
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["tags"] = tags;
    return gold - logZ;
  }

  // d llh_b = (gold indicator counts - marginals) * grad_b. The backward recursion carries the unary
  // marginals P_t = exp(alpha_t + beta_t - logZ) rather than beta in the log domain: one exp over
  // [B, K, K] per step (no second logsumexp), and P stays a distribution, so it cannot blow up.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    const auto end = ctx->get_saved_variables()[0], transT = ctx->saved_data["transT"].toTensor();
    const auto alphas = ctx->saved_data["alphas"].toTensor(), lses = ctx->saved_data["lses"].toTensor();
    const auto mask = ctx->saved_data["mask"].toTensor(), tags = ctx->saved_data["tags"].toTensor();
    const int64_t T = alphas.size(0), B = alphas.size(1), K = alphas.size(2);
    const auto gw = g.to(alphas.scalar_type()).contiguous();     // [B]
    const auto wT = mask.t().to(alphas.scalar_type()).mul_(gw);  // [T, B]: grad_b where position t counts

    auto marg = torch::empty({T, B, K}, alphas.options());
    auto P = torch::softmax(alphas[T - 1] + end, 1);  // P(y_last = j); the held alpha makes it hold past the length
    marg[T - 1].copy_(P);
    const auto dEndZ = gw.unsqueeze(0).mm(P);
    auto dTransZT = torch::zeros({1, K * K}, alphas.options());  // expected transition counts, [j, i] layout
    auto xi = torch::empty({B, K, K}, alphas.options());
    for (int64_t t = T - 1; t >= 1; --t) {
      // xi[b, j, i] = P(y_{t-1} = i, y_t = j) = exp(alpha_{t-1}[i] + trans[i, j] - lse_t[j]) * P_t[j]
      at::add_out(xi, alphas[t - 1].unsqueeze(1), transT).add_((P.log() - lses[t]).unsqueeze(2)).exp_();
      dTransZT.addmm_(wT[t].unsqueeze(0), xi.view({B, K * K}));  // sum over b of grad_b * xi_b
      P = torch::where(mask.select(1, t).unsqueeze(1), xi.sum(1), P);  // P_{t-1}; held past the length
      marg[t - 1].copy_(P);
    }
    const auto dStartZ = gw.unsqueeze(0).mm(P);

    // Gold counts minus expectations, each sequence weighted by its grad_output.
    const auto w = wT.t();  // [B, T]: masked positions contribute nothing
    auto dE = (marg.transpose(0, 1) * w.unsqueeze(2)).neg_().contiguous();
    dE.scatter_add_(2, tags.unsqueeze(2), w.unsqueeze(2));
    auto dTrans = dTransZT.view({K, K}).t().neg().contiguous();
    if (T > 1) dTrans.view({-1}).scatter_add_(0, pairIndex(tags, K).reshape(-1), w.slice(1, 1).reshape(-1));
    auto dStart = dStartZ.neg().view({K}).scatter_add_(0, tags.select(1, 0), gw);
    auto dEnd = dEndZ.neg().view({K}).scatter_add_(0, lastTags(tags, mask), gw);
    return {dE, dTrans, dStart, dEnd, Tensor(), Tensor()};
  }
};

}  // namespace

torch::Tensor crfLogLikelihood(const torch::Tensor& emissions, const torch::Tensor& mask, const torch::Tensor& tags,
                               const torch::Tensor& transitions, const torch::Tensor& startTransitions,
                               const torch::Tensor& endTransitions, const CrfConstraints& constraints) {
  const auto in = prepare(emissions, mask, &tags, transitions, startTransitions, endTransitions, constraints);
  return CrfLlhFunction::apply(in.emissions, in.trans, in.start, in.end, in.mask, in.tags);
}

torch::Tensor crfViterbiDecode(const torch::Tensor& emissions, const torch::Tensor& mask,
                               const torch::Tensor& transitions, const torch::Tensor& startTransitions,
                               const torch::Tensor& endTransitions, const CrfConstraints& constraints) {
  torch::NoGradGuard noGrad;
  const auto in = prepare(emissions, mask, nullptr, transitions, startTransitions, endTransitions, constraints);
  const int64_t B = in.emissions.size(0), T = in.emissions.size(1), K = in.emissions.size(2);
  const auto eT = in.emissions.transpose(0, 1).contiguous();  // [T, B, K]
  const auto mT = in.mask.t().unsqueeze(2);                   // [T, B, 1]
  // Past a sequence's length the backpointer is the identity, so the batched backtrack keeps its last tag.
  const auto identity = torch::arange(K, in.emissions.options().dtype(torch::kLong)).expand({B, K});
  const auto transT = in.trans.t().contiguous();
  auto backptr = torch::empty({T, B, K}, identity.options());
  auto score = in.start + eT[0];
  for (int64_t t = 1; t < T; ++t) {
    const auto best = (score.unsqueeze(1) + transT).max(2);  // [B, j, i]: best previous tag i for each j
    score = torch::where(mT[t], std::get<0>(best) + eT[t], score);
    backptr[t].copy_(torch::where(mT[t], std::get<1>(best), identity));
  }
  auto tag = std::get<1>((score + in.end).max(1, /*keepdim=*/true));  // [B, 1], ties -> first index as torch.max
  auto path = torch::empty({T, B}, identity.options());
  for (int64_t t = T - 1; t >= 0; --t) {
    path[t].copy_(tag.squeeze(1));
    if (t > 0) tag = backptr[t].gather(1, tag);
  }
  return path.t().masked_fill(in.mask.logical_not(), -1).contiguous();
}

torch::Tensor crfMarginals(const torch::Tensor& emissions, const torch::Tensor& mask, const torch::Tensor& transitions,
                           const torch::Tensor& startTransitions, const torch::Tensor& endTransitions,
                           const CrfConstraints& constraints) {
  torch::NoGradGuard noGrad;
  const auto in = prepare(emissions, mask, nullptr, transitions, startTransitions, endTransitions, constraints);
  const int64_t B = in.emissions.size(0), T = in.emissions.size(1), K = in.emissions.size(2);
  const auto eT = in.emissions.transpose(0, 1);  // [T, B, K]
  const auto mT = in.mask.t().unsqueeze(2);       // [T, B, 1]
  // alpha_t(j) = log sum over paths ending in j at t; held at the last real position past a sequence's end.
  std::vector<Tensor> alpha(T), beta(T);
  alpha[0] = in.start + eT[0];
  for (int64_t t = 1; t < T; ++t)
    alpha[t] = torch::where(mT[t], torch::logsumexp(alpha[t - 1].unsqueeze(2) + in.trans, 1) + eT[t], alpha[t - 1]);
  // beta_t(i) = log sum over continuations from i at t; the end scores at each sequence's last position.
  const auto endB = in.end.expand({B, K});
  beta[T - 1] = endB;
  for (int64_t t = T - 2; t >= 0; --t)
    beta[t] = torch::where(mT[t + 1], torch::logsumexp(in.trans.unsqueeze(0) + (eT[t + 1] + beta[t + 1]).unsqueeze(1), 2), endB);
  const auto logZ = torch::logsumexp(alpha[T - 1] + in.end, 1, /*keepdim=*/true);  // [B, 1]
  auto marginals = torch::stack(alpha, 1).add_(torch::stack(beta, 1)).sub_(logZ.unsqueeze(1)).exp_();
  return marginals.masked_fill_(in.mask.logical_not().unsqueeze(2), 0);
}

}  // namespace ner
