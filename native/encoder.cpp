#include "encoder.h"

#include "compat.h"

namespace nn = torch::nn;

namespace ner {

bool isKnownActivation(const std::string& name) {
  return name == "gelu" || name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "relu" ||
         name == "silu" || name == "swish" || name == "tanh";
}

torch::Tensor applyActivation(const std::string& name, const torch::Tensor& x) {
  if (name == "gelu") return torch::gelu(x);  // exact (erf) GELU, as HF's "gelu"
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  if (name == "silu" || name == "swish") return torch::silu(x);
  if (name == "tanh") return torch::tanh(x);
  throw std::invalid_argument("unsupported hidden_act \"" + name + "\"");
}

static nn::LayerNorm makeLayerNorm(const BertConfig& c) {
  return nn::LayerNorm(nn::LayerNormOptions({c.hiddenSize}).eps(c.layerNormEps));
}

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c) {
  word_embeddings = register_module("word_embeddings", nn::Embedding(c.vocabSize, c.hiddenSize));
  position_embeddings = register_module("position_embeddings", nn::Embedding(c.maxPositionEmbeddings, c.hiddenSize));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.typeVocabSize, c.hiddenSize));
  LayerNorm = register_module("LayerNorm", makeLayerNorm(c));
  dropout = register_module("dropout", nn::Dropout(c.hiddenDropoutProb));
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& inputIds, const torch::Tensor& tokenTypeIds) {
  auto positions = torch::arange(inputIds.size(1), inputIds.options()).unsqueeze(0);
  auto embeddings = word_embeddings(inputIds) + position_embeddings(positions) + token_type_embeddings(tokenTypeIds);
  return dropout(LayerNorm(embeddings));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c)
    : numHeads(c.numAttentionHeads), headSize(c.hiddenSize / c.numAttentionHeads),
      dropoutProb(c.attentionProbsDropoutProb) {
  query = register_module("query", nn::Linear(c.hiddenSize, c.hiddenSize));
  key = register_module("key", nn::Linear(c.hiddenSize, c.hiddenSize));
  value = register_module("value", nn::Linear(c.hiddenSize, c.hiddenSize));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& keepMask) {
  const auto B = hidden.size(0), T = hidden.size(1);
  auto heads = [&](const torch::Tensor& x) { return x.view({B, T, numHeads, headSize}).transpose(1, 2); };
  auto context = compat::scaledDotProductAttention(heads(query(hidden)), heads(key(hidden)), heads(value(hidden)),
                                                   keepMask, dropoutProb, is_training());
  return context.transpose(1, 2).reshape({B, T, numHeads * headSize});
}

BertResidualOutputImpl::BertResidualOutputImpl(int64_t inFeatures, const BertConfig& c) {
  dense = register_module("dense", nn::Linear(inFeatures, c.hiddenSize));
  LayerNorm = register_module("LayerNorm", makeLayerNorm(c));
  dropout = register_module("dropout", nn::Dropout(c.hiddenDropoutProb));
}

torch::Tensor BertResidualOutputImpl::forward(const torch::Tensor& hidden, const torch::Tensor& residual) {
  return LayerNorm(dropout(dense(hidden)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c) {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertResidualOutput(c.hiddenSize, c));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& keepMask) {
  return output(self(hidden, keepMask), hidden);
}

BertIntermediateImpl::BertIntermediateImpl(const BertConfig& c) : activation(c.hiddenAct) {
  if (!isKnownActivation(activation)) throw std::invalid_argument("unsupported hidden_act \"" + activation + "\"");
  dense = register_module("dense", nn::Linear(c.hiddenSize, c.intermediateSize));
}

torch::Tensor BertIntermediateImpl::forward(const torch::Tensor& hidden) {
  return applyActivation(activation, dense(hidden));
}

BertLayerImpl::BertLayerImpl(const BertConfig& c) {
  attention = register_module("attention", BertAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertResidualOutput(c.intermediateSize, c));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& hidden, const torch::Tensor& keepMask) {
  auto attended = attention(hidden, keepMask);
  return output(intermediate(attended), attended);
}

BertEncoderImpl::BertEncoderImpl(const BertConfig& c) {
  layer = register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.numHiddenLayers; ++i) layer->push_back(BertLayer(c));
}

torch::Tensor BertEncoderImpl::forward(torch::Tensor hidden, const torch::Tensor& keepMask) {
  for (const auto& module : *layer) hidden = module->as<BertLayerImpl>()->forward(hidden, keepMask);
  return hidden;
}

BertModelImpl::BertModelImpl(const BertConfig& c) : config(c) {
  if (c.hiddenSize % c.numAttentionHeads != 0)
    throw std::invalid_argument("hidden_size must be a multiple of num_attention_heads");
  embeddings = register_module("embeddings", BertEmbeddings(c));
  encoder = register_module("encoder", BertEncoder(c));
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& inputIds, const torch::Tensor& attentionMask,
                                     const torch::Tensor& tokenTypeIds) {
  auto keepMask = attentionMask.to(torch::kBool).unsqueeze(1).unsqueeze(2);  // [B, 1, 1, T]
  return encoder(embeddings(inputIds, tokenTypeIds), keepMask);
}

}  // namespace ner
