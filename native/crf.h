// Linear-chain CRF (pytorch-crf layout: transitions[i][j] scores moving from tag i to tag j).
// Batched over the whole batch at each time step; the backward pass is written by hand
// (forward-backward marginals) instead of autograd through the time loop.
#pragma once
#include <torch/torch.h>

namespace ner {

// Transitions that the label scheme forbids, as additive score masks (0 = allowed, -1e4 = forbidden).
// Empty tensors mean "no constraint".
struct CrfConstraints {
  torch::Tensor transitions;  // [K, K] float
  torch::Tensor start;        // [K] float
  torch::Tensor end;          // [K] float
  bool defined() const { return transitions.defined() && transitions.numel() > 0; }
};

// Per-sequence log-likelihood log p(tags | emissions), shape [B].
// emissions [B, T, K] float; mask [B, T] bool, left-aligned with mask[:, 0] all true;
// tags [B, T] int64 (values at masked-out positions are ignored).
// Differentiable w.r.t. emissions, transitions, startTransitions, endTransitions.
torch::Tensor crfLogLikelihood(const torch::Tensor& emissions, const torch::Tensor& mask,
                               const torch::Tensor& tags, const torch::Tensor& transitions,
                               const torch::Tensor& startTransitions,
                               const torch::Tensor& endTransitions,
                               const CrfConstraints& constraints = {});

// Viterbi decoding. Returns [B, T] int64 best paths; positions beyond each sequence's length are -1.
// Runs without autograd; the result stays on the emissions' device (no host sync inside).
torch::Tensor crfViterbiDecode(const torch::Tensor& emissions, const torch::Tensor& mask,
                               const torch::Tensor& transitions, const torch::Tensor& startTransitions,
                               const torch::Tensor& endTransitions,
                               const CrfConstraints& constraints = {});

// Per-position marginals P(y_t = k | emissions) by the forward-backward algorithm, [B, T, K], 0 where
// masked out. The confidence of a decoded tag (predict's score) for CRF heads.
torch::Tensor crfMarginals(const torch::Tensor& emissions, const torch::Tensor& mask, const torch::Tensor& transitions,
                           const torch::Tensor& startTransitions, const torch::Tensor& endTransitions,
                           const CrfConstraints& constraints = {});

}  // namespace ner
