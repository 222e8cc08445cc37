#include "encoder.h"

#include "compat.h"
#include "dropout.h"

namespace nn = torch::nn;

namespace ner {

EncoderFamily parseEncoderFamily(const std::string& name) {
  if (name == "bert") return EncoderFamily::Bert;
  if (name == "distilbert") return EncoderFamily::DistilBert;
  if (name == "roberta" || name == "xlm-roberta") return EncoderFamily::Roberta;
  throw std::invalid_argument("unknown encoder family \"" + name + "\" (expected bert, distilbert, roberta or xlm-roberta)");
}

std::string EncoderConfig::prefix() const {
  switch (family) {
    case EncoderFamily::Bert: return "bert";
    case EncoderFamily::DistilBert: return "distilbert";
    case EncoderFamily::Roberta: return "roberta";
  }
  return "bert";
}

namespace {

// DistilBERT's names for the pieces of a BERT layer (after "<prefix>.encoder.layer.N." /
// "<prefix>.transformer.layer.N."), in HF's modeling_distilbert.py.
const std::pair<const char*, const char*> kDistilBertLayerNames[] = {
    {"attention.self.query.", "attention.q_lin."},   {"attention.self.key.", "attention.k_lin."},
    {"attention.self.value.", "attention.v_lin."},   {"attention.output.dense.", "attention.out_lin."},
    {"attention.output.LayerNorm.", "sa_layer_norm."}, {"intermediate.dense.", "ffn.lin1."},
    {"output.dense.", "ffn.lin2."},                  {"output.LayerNorm.", "output_layer_norm."},
};

// Rewrites "<layers>N.<piece>" to "<toLayers>N.<renamed piece>" using the table in the given direction.
std::string renameLayerKey(const std::string& key, const std::string& fromLayers, const std::string& toLayers, bool toCheckpoint) {
  if (key.rfind(fromLayers, 0) != 0) return key;
  const auto dot = key.find('.', fromLayers.size());
  if (dot == std::string::npos) return key;
  const std::string index = key.substr(fromLayers.size(), dot - fromLayers.size());
  const std::string rest = key.substr(dot + 1);
  for (const auto& [moduleName, checkpointName] : kDistilBertLayerNames) {
    const std::string from = toCheckpoint ? moduleName : checkpointName, to = toCheckpoint ? checkpointName : moduleName;
    if (rest.rfind(from, 0) == 0) return toLayers + index + "." + to + rest.substr(from.size());
  }
  return key;
}

}  // namespace

std::string checkpointKey(const EncoderConfig& c, const std::string& key) {
  if (c.family != EncoderFamily::DistilBert) return key;
  return renameLayerKey(key, c.prefix() + ".encoder.layer.", c.prefix() + ".transformer.layer.", true);
}

std::string moduleKey(const EncoderConfig& c, const std::string& key) {
  if (c.family != EncoderFamily::DistilBert) return key;
  return renameLayerKey(key, c.prefix() + ".transformer.layer.", c.prefix() + ".encoder.layer.", false);
}

torch::Tensor sinusoidalPositions(int64_t positions, int64_t dim) {
  // position / 10000^(2 * (j // 2) / dim); sin on even columns, cos on odd ones (computed in double, as numpy).
  auto pos = torch::arange(positions, torch::kDouble).unsqueeze(1);
  auto j = torch::arange(dim, torch::kDouble);
  auto angle = pos / torch::pow(10000.0, 2 * torch::floor(j / 2) / static_cast<double>(dim));
  auto out = torch::empty({positions, dim}, torch::kFloat);
  using torch::indexing::Slice;
  out.index_put_({Slice(), Slice(0, torch::indexing::None, 2)}, torch::sin(angle.index({Slice(), Slice(0, torch::indexing::None, 2)})).to(torch::kFloat));
  out.index_put_({Slice(), Slice(1, torch::indexing::None, 2)}, torch::cos(angle.index({Slice(), Slice(1, torch::indexing::None, 2)})).to(torch::kFloat));
  return out;
}

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

static nn::LayerNorm makeLayerNorm(const EncoderConfig& c) {
  return nn::LayerNorm(nn::LayerNormOptions({c.hiddenSize}).eps(c.layerNormEps));
}

namespace {

// nn::Embedding's lookup with a CPU backward that adds each row's gradient in place. ATen 1.13's
// embedding_dense_backward on the CPU goes through index_add_, which for a 2-D weight does a select()
// and an add_() per token: ~1/20 of a BERT-mini training step for the three embedding tables. The
// sum per row is taken in the same token order, so the gradient is the same to the bit.
struct EmbeddingLookup : torch::autograd::Function<EmbeddingLookup> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& weight, const torch::Tensor& ids,
                               int64_t paddingIdx) {
    ctx->save_for_backward({ids});
    ctx->saved_data["rows"] = weight.size(0);
    ctx->saved_data["padding"] = paddingIdx;
    auto flat = ids.reshape({-1});
    auto out = weight.index_select(0, flat);
    auto shape = ids.sizes().vec();
    shape.push_back(weight.size(1));
    return out.view(shape);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto ids = ctx->get_saved_variables()[0].reshape({-1}).to(torch::kLong).contiguous();
    const auto grad = grads[0].reshape({ids.size(0), -1}).to(torch::kFloat).contiguous();
    const int64_t rows = ctx->saved_data["rows"].toInt(), width = grad.size(1), padding = ctx->saved_data["padding"].toInt();
    auto weightGrad = torch::zeros({rows, width}, grad.options());
    const int64_t* id = ids.data_ptr<int64_t>();
    const float* g = grad.data_ptr<float>();
    float* out = weightGrad.data_ptr<float>();
    for (int64_t t = 0; t < ids.size(0); ++t) {
      if (id[t] == padding) continue;
      float* row = out + id[t] * width;
      const float* src = g + t * width;
      for (int64_t j = 0; j < width; ++j) row[j] += src[j];
    }
    return {weightGrad, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor embeddingLookup(const torch::Tensor& weight, const torch::Tensor& ids, int64_t paddingIdx) {
  if (weight.is_cpu() && weight.scalar_type() == torch::kFloat && weight.requires_grad() && torch::GradMode::is_enabled())
    return EmbeddingLookup::apply(weight, ids, paddingIdx);
  return torch::embedding(weight, ids, paddingIdx);
}

BertEmbeddingsImpl::BertEmbeddingsImpl(const EncoderConfig& c) : config(c) {
  word_embeddings = register_module("word_embeddings", nn::Embedding(c.vocabSize, c.hiddenSize));
  position_embeddings = register_module("position_embeddings", nn::Embedding(c.maxPositionEmbeddings, c.hiddenSize));
  if (c.sinusoidalPositions) {
    torch::NoGradGuard noGrad;
    position_embeddings->weight.copy_(sinusoidalPositions(c.maxPositionEmbeddings, c.hiddenSize));
    position_embeddings->weight.set_requires_grad(false);
  }
  if (c.typeVocabSize > 0)
    token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.typeVocabSize, c.hiddenSize));
  LayerNorm = register_module("LayerNorm", makeLayerNorm(c));
  dropout = register_module("dropout", Dropout(c.hiddenDropoutProb));
}

torch::Tensor BertEmbeddingsImpl::positionIds(const torch::Tensor& inputIds) const {
  if (!config.positionsAfterPadding()) return torch::arange(inputIds.size(1), inputIds.options()).unsqueeze(0);
  auto real = inputIds.ne(config.padTokenId).to(torch::kLong);
  return torch::cumsum(real, 1) * real + config.padTokenId;
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& inputIds, const torch::Tensor& tokenTypeIds) {
  // HF gives RoBERTa's position table padding_idx too; BERT's and DistilBERT's have none.
  const int64_t positionPadding = config.positionsAfterPadding() ? config.padTokenId : -1;
  auto embeddings = embeddingLookup(word_embeddings->weight, inputIds, config.padTokenId) +
                    embeddingLookup(position_embeddings->weight, positionIds(inputIds), positionPadding);
  if (token_type_embeddings) embeddings = embeddings + embeddingLookup(token_type_embeddings->weight, tokenTypeIds);
  return dropout(LayerNorm(embeddings));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const EncoderConfig& c)
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

BertResidualOutputImpl::BertResidualOutputImpl(int64_t inFeatures, const EncoderConfig& c) {
  dense = register_module("dense", nn::Linear(inFeatures, c.hiddenSize));
  LayerNorm = register_module("LayerNorm", makeLayerNorm(c));
  dropout = register_module("dropout", Dropout(c.hiddenDropoutProb));
}

torch::Tensor BertResidualOutputImpl::forward(const torch::Tensor& hidden, const torch::Tensor& residual) {
  return LayerNorm(dropout(dense(hidden)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const EncoderConfig& c) {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertResidualOutput(c.hiddenSize, c));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& hidden, const torch::Tensor& keepMask) {
  return output(self(hidden, keepMask), hidden);
}

BertIntermediateImpl::BertIntermediateImpl(const EncoderConfig& c) : activation(c.hiddenAct) {
  if (!isKnownActivation(activation)) throw std::invalid_argument("unsupported hidden_act \"" + activation + "\"");
  dense = register_module("dense", nn::Linear(c.hiddenSize, c.intermediateSize));
}

torch::Tensor BertIntermediateImpl::forward(const torch::Tensor& hidden) {
  return applyActivation(activation, dense(hidden));
}

BertLayerImpl::BertLayerImpl(const EncoderConfig& c) {
  attention = register_module("attention", BertAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertResidualOutput(c.intermediateSize, c));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& hidden, const torch::Tensor& keepMask) {
  auto attended = attention(hidden, keepMask);
  return output(intermediate(attended), attended);
}

BertEncoderImpl::BertEncoderImpl(const EncoderConfig& c) {
  layer = register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.numHiddenLayers; ++i) layer->push_back(BertLayer(c));
}

torch::Tensor BertEncoderImpl::forward(torch::Tensor hidden, const torch::Tensor& keepMask) {
  for (const auto& module : *layer) hidden = module->as<BertLayerImpl>()->forward(hidden, keepMask);
  return hidden;
}

BertModelImpl::BertModelImpl(const EncoderConfig& c) : config(c) {
  if (c.hiddenSize % c.numAttentionHeads != 0)
    throw std::invalid_argument("hidden_size must be a multiple of num_attention_heads");
  if (c.padTokenId >= c.vocabSize) throw std::invalid_argument("pad_token_id must be below vocab_size");
  if (c.maxSequenceLength() < 1) throw std::invalid_argument("max_position_embeddings leaves no room after padding_idx + 1");
  if (c.sinusoidalPositions && c.hiddenSize % 2 != 0) throw std::invalid_argument("sinusoidal positions need an even hidden size");
  embeddings = register_module("embeddings", BertEmbeddings(c));
  encoder = register_module("encoder", BertEncoder(c));
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& inputIds, const torch::Tensor& attentionMask,
                                     const torch::Tensor& tokenTypeIds) {
  auto keepMask = attentionMask.to(torch::kBool).unsqueeze(1).unsqueeze(2);  // [B, 1, 1, T]
  return encoder(embeddings(inputIds, tokenTypeIds), keepMask);
}

}  // namespace ner
