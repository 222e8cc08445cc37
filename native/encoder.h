// The encoder, one module per concept of HF modeling_bert.py; parameter names equal BERT's and
// RoBERTa's checkpoint keys (embeddings.word_embeddings.weight, encoder.layer.0.attention.self.query.weight,
// ...). DistilBERT is the same math under other names: checkpointKey / moduleKey translate them.
#pragma once
#include <torch/torch.h>

#include "dropout.h"

#include "encoder_config.h"

namespace ner {

struct BertEmbeddingsImpl : torch::nn::Module {
  explicit BertEmbeddingsImpl(const EncoderConfig& config);
  // inputIds, tokenTypeIds: [B, T] int64. Positions are 0..T-1 (BERT, DistilBERT) or, for RoBERTa,
  // padding_idx + 1 + the number of non-pad tokens so far (pads get padding_idx), as HF derives them.
  torch::Tensor forward(const torch::Tensor& inputIds, const torch::Tensor& tokenTypeIds);
  torch::Tensor positionIds(const torch::Tensor& inputIds) const;

  EncoderConfig config;

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  torch::nn::Embedding token_type_embeddings{nullptr};  // absent when type_vocab_size is 0 (DistilBERT)
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

struct BertSelfAttentionImpl : torch::nn::Module {
  explicit BertSelfAttentionImpl(const EncoderConfig& config);
  // hidden [B, T, H]; keepMask [B, 1, 1, T] bool.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& keepMask);

  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  int64_t numHeads, headSize;
  double dropoutProb;
};
TORCH_MODULE(BertSelfAttention);

// Dense + dropout + residual LayerNorm: HF's BertSelfOutput and BertOutput are this same shape.
struct BertResidualOutputImpl : torch::nn::Module {
  BertResidualOutputImpl(int64_t inFeatures, const EncoderConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& residual);

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

struct BertAttentionImpl : torch::nn::Module {
  explicit BertAttentionImpl(const EncoderConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& keepMask);

  BertSelfAttention self{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertIntermediateImpl : torch::nn::Module {
  explicit BertIntermediateImpl(const EncoderConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden);

  torch::nn::Linear dense{nullptr};
  std::string activation;
};
TORCH_MODULE(BertIntermediate);

struct BertLayerImpl : torch::nn::Module {
  explicit BertLayerImpl(const EncoderConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& keepMask);

  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

struct BertEncoderImpl : torch::nn::Module {
  explicit BertEncoderImpl(const EncoderConfig& config);
  torch::Tensor forward(torch::Tensor hidden, const torch::Tensor& keepMask);

  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(BertEncoder);

// HF BertModel without the pooler (token classification does not use it).
struct BertModelImpl : torch::nn::Module {
  explicit BertModelImpl(const EncoderConfig& config);
  // Returns last_hidden_state [B, T, H]. attentionMask [B, T] (1 = real token).
  torch::Tensor forward(const torch::Tensor& inputIds, const torch::Tensor& attentionMask,
                        const torch::Tensor& tokenTypeIds);

  EncoderConfig config;
  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
};
TORCH_MODULE(BertModel);

// weight[ids] as nn::Embedding computes it, with a faster CPU backward (same sums). Rows equal to
// paddingIdx (>= 0) get no gradient, as nn.Embedding(padding_idx=...).
torch::Tensor embeddingLookup(const torch::Tensor& weight, const torch::Tensor& ids, int64_t paddingIdx = -1);

// DistilBERT's sinusoidal position table (HF create_sinusoidal_embeddings).
torch::Tensor sinusoidalPositions(int64_t positions, int64_t dim);

// Module parameter name <-> checkpoint key for the config's family (identity except for DistilBERT).
std::string checkpointKey(const EncoderConfig& config, const std::string& moduleKey);
std::string moduleKey(const EncoderConfig& config, const std::string& checkpointKey);

// The activations config.json's hidden_act may name.
torch::Tensor applyActivation(const std::string& name, const torch::Tensor& x);
bool isKnownActivation(const std::string& name);

}  // namespace ner
