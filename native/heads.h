// Token-classification heads over the BERT encoder, and the whole tagger (encoder + head).
//   softmax          dropout + linear over every sub-token; cross-entropy where labels != -100 (HF semantics)
//   crf              linear emissions at word starts + linear-chain CRF over words
//   bilstm-crf       BiLSTM over the words' first sub-tokens, then emissions + CRF
//   bilstm-attn-crf  BiLSTM + multi-head self-attention (residual), then emissions + CRF
#pragma once
#include <torch/torch.h>

#include "dropout.h"

#include <string>
#include <vector>

#include "crf.h"
#include "encoder.h"

namespace ner {

enum class HeadKind { Softmax, Crf, BiLstmCrf, BiLstmAttnCrf };
HeadKind parseHeadKind(const std::string& name);
std::string headKindName(HeadKind kind);

struct HeadConfig {
  HeadKind kind = HeadKind::Softmax;
  int64_t numLabels = 2;
  double classifierDropout = 0.1;  // HF: classifier_dropout, else hidden_dropout_prob
  int64_t lstmHiddenSize = 256;    // per direction
  int64_t lstmLayers = 1;
  int64_t attentionHeads = 4;
  bool constrainDecoding = true;   // Viterbi/marginals only over transitions the scheme allows
  bool constrainTraining = false;  // also apply the scheme constraints in the CRF likelihood
  CrfConstraints constraints;      // the scheme's constraints, used where the two flags say
};

// One padded batch, already on the model's device. Word-level tensors select the first sub-token of
// each word the batch is responsible for, left-aligned, so the CRF sees contiguous sequences.
struct TaggerBatch {
  torch::Tensor inputIds;       // [B, T] int64
  torch::Tensor attentionMask;  // [B, T] int64 (1 = real token)
  torch::Tensor tokenTypeIds;   // [B, T] int64
  torch::Tensor labels;         // [B, T] int64, -100 = not scored (softmax loss)
  torch::Tensor wordIndex;      // [B, W] int64 token position of each word start (0 where padded)
  torch::Tensor wordMask;       // [B, W] bool
  torch::Tensor wordLabels;     // [B, W] int64 (0 where padded)
  torch::Tensor wordLengths;    // [B] int64, on the CPU (packing the BiLSTM needs host lengths)
  int64_t realTokens = 0;       // non-pad sub-tokens, for throughput figures
  int64_t words = 0;            // scored words in the batch
};

struct CrfParamsImpl : torch::nn::Module {
  explicit CrfParamsImpl(int64_t numTags);
  torch::Tensor transitions, start_transitions, end_transitions;  // pytorch-crf names
};
TORCH_MODULE(CrfParams);

struct BertTaggerImpl : torch::nn::Module {
  BertTaggerImpl(const EncoderConfig& encoderConfig, const HeadConfig& headConfig);

  // last_hidden_state [B, T, H] and per-sub-token logits [B, T, K] (softmax head) or emissions at word
  // level [B, W, K] (CRF heads, when wordIndex is given).
  torch::Tensor encode(const TaggerBatch& batch);
  torch::Tensor subtokenLogits(const torch::Tensor& hidden);
  torch::Tensor wordEmissions(const torch::Tensor& hidden, const TaggerBatch& batch);

  // Mean loss over the batch (softmax: over labelled sub-tokens; CRF: negative log-likelihood per sentence).
  torch::Tensor loss(const TaggerBatch& batch);
  // Predicted tag per word [B, W] int64 (-1 where padded) and its score (softmax probability, or the
  // CRF marginal probability of the decoded tag at that word).
  std::pair<torch::Tensor, torch::Tensor> decode(const TaggerBatch& batch);

  // HF-style initialisation: normal(0, initializerRange) for linear/embedding weights, zeros for biases,
  // ones/zeros for LayerNorm; CRF scores uniform(-0.1, 0.1) as pytorch-crf.
  void initWeights(double initializerRange);
  bool isCrf() const { return head.kind != HeadKind::Softmax; }
  // Parameter names whose leading dimension (and, for transitions, both) is indexed by label id:
  // what label mapping by name rearranges.
  std::vector<std::pair<std::string, int>> labelIndexedTensors() const;
  bool isEncoderParameter(const std::string& name) const { return name.rfind(encoderConfig.prefix() + ".", 0) == 0; }

  EncoderConfig encoderConfig;
  HeadConfig head;
  BertModel encoder{nullptr};  // registered under the family's checkpoint prefix ("bert", "roberta", ...)
  Dropout dropout{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::MultiheadAttention attention{nullptr};
  torch::nn::LayerNorm attentionNorm{nullptr};
  torch::nn::Linear classifier{nullptr};
  CrfParams crf{nullptr};
};
TORCH_MODULE(BertTagger);

}  // namespace ner
