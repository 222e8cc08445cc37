#include "heads.h"

#include "dropout.h"

namespace nn = torch::nn;

namespace ner {

HeadKind parseHeadKind(const std::string& name) {
  if (name == "softmax") return HeadKind::Softmax;
  if (name == "crf") return HeadKind::Crf;
  if (name == "bilstm-crf") return HeadKind::BiLstmCrf;
  if (name == "bilstm-attn-crf") return HeadKind::BiLstmAttnCrf;
  throw std::invalid_argument("unknown head \"" + name + "\" (expected softmax, crf, bilstm-crf or bilstm-attn-crf)");
}

std::string headKindName(HeadKind kind) {
  switch (kind) {
    case HeadKind::Softmax: return "softmax";
    case HeadKind::Crf: return "crf";
    case HeadKind::BiLstmCrf: return "bilstm-crf";
    case HeadKind::BiLstmAttnCrf: return "bilstm-attn-crf";
  }
  return "?";
}

CrfParamsImpl::CrfParamsImpl(int64_t numTags) {
  transitions = register_parameter("transitions", torch::empty({numTags, numTags}).uniform_(-0.1, 0.1));
  start_transitions = register_parameter("start_transitions", torch::empty({numTags}).uniform_(-0.1, 0.1));
  end_transitions = register_parameter("end_transitions", torch::empty({numTags}).uniform_(-0.1, 0.1));
}

BertTaggerImpl::BertTaggerImpl(const EncoderConfig& bc, const HeadConfig& hc) : encoderConfig(bc), head(hc) {
  if (hc.numLabels < 1) throw std::invalid_argument("the tagger needs at least one label");
  encoder = register_module(bc.prefix(), BertModel(bc));
  dropout = register_module("dropout", Dropout(hc.classifierDropout));
  int64_t features = bc.hiddenSize;
  if (hc.kind == HeadKind::BiLstmCrf || hc.kind == HeadKind::BiLstmAttnCrf) {
    lstm = register_module("lstm", nn::LSTM(nn::LSTMOptions(bc.hiddenSize, hc.lstmHiddenSize)
                                                .num_layers(hc.lstmLayers)
                                                .bidirectional(true)
                                                .batch_first(true)));
    features = 2 * hc.lstmHiddenSize;
  }
  if (hc.kind == HeadKind::BiLstmAttnCrf) {
    if (features % hc.attentionHeads != 0)
      throw std::invalid_argument("2 * lstm hidden size must be a multiple of the attention heads");
    attention = register_module("attention", nn::MultiheadAttention(nn::MultiheadAttentionOptions(features, hc.attentionHeads)));
    attentionNorm = register_module("attention_norm", nn::LayerNorm(nn::LayerNormOptions({features})));
  }
  classifier = register_module("classifier", nn::Linear(features, hc.numLabels));
  if (isCrf()) crf = register_module("crf", CrfParams(hc.numLabels));
}

void BertTaggerImpl::initWeights(double range) {
  torch::NoGradGuard noGrad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<nn::LinearImpl>()) {
      linear->weight.normal_(0, range);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding = module->as<nn::EmbeddingImpl>()) {
      if (!embedding->weight.requires_grad()) continue;  // fixed sinusoidal positions keep their table
      embedding->weight.normal_(0, range);
    } else if (auto* norm = module->as<nn::LayerNormImpl>()) {
      norm->weight.fill_(1);
      norm->bias.zero_();
    } else if (auto* params = module->as<CrfParamsImpl>()) {
      for (auto& p : params->parameters(false)) p.uniform_(-0.1, 0.1);
    }
  }
  // HF zeroes the padding_idx rows (word embeddings; RoBERTa's positions too).
  const auto& c = encoderConfig;
  if (c.padTokenId >= 0) {
    encoder->embeddings->word_embeddings->weight[c.padTokenId].zero_();
    if (c.positionsAfterPadding()) encoder->embeddings->position_embeddings->weight[c.padTokenId].zero_();
  }
}

std::vector<std::pair<std::string, int>> BertTaggerImpl::labelIndexedTensors() const {
  std::vector<std::pair<std::string, int>> out = {{"classifier.weight", 1}, {"classifier.bias", 1}};
  if (isCrf()) {
    out.push_back({"crf.transitions", 2});
    out.push_back({"crf.start_transitions", 1});
    out.push_back({"crf.end_transitions", 1});
  }
  return out;
}

torch::Tensor BertTaggerImpl::encode(const TaggerBatch& batch) {
  return encoder(batch.inputIds, batch.attentionMask, batch.tokenTypeIds);
}

torch::Tensor BertTaggerImpl::subtokenLogits(const torch::Tensor& hidden) {
  return classifier(dropout(hidden));
}

// bf16/half activations (autocast) go up to fp32 for the loss and the CRF; double stays double.
static torch::Tensor atLeastFloat(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? x : x.to(torch::kFloat);
}

torch::Tensor BertTaggerImpl::wordEmissions(const torch::Tensor& hidden, const TaggerBatch& batch) {
  // Gather the first sub-token of every word: [B, W, H], left-aligned.
  auto index = batch.wordIndex.unsqueeze(-1).expand({-1, -1, hidden.size(-1)});
  auto features = hidden.gather(1, index);
  if (lstm) {
    features = dropout(features);
    auto packed = nn::utils::rnn::pack_padded_sequence(features, batch.wordLengths, /*batch_first=*/true,
                                                       /*enforce_sorted=*/false);
    auto out = std::get<0>(lstm->forward_with_packed_input(packed));
    features = std::get<0>(nn::utils::rnn::pad_packed_sequence(out, /*batch_first=*/true, 0.0,
                                                               batch.wordIndex.size(1)));
  }
  if (attention) {
    auto seqFirst = features.transpose(0, 1);  // MultiheadAttention wants [W, B, F]
    auto attended = std::get<0>(attention(seqFirst, seqFirst, seqFirst, batch.wordMask.logical_not()));
    features = attentionNorm(features + attended.transpose(0, 1));
  }
  return atLeastFloat(classifier(dropout(features)));  // the CRF runs in fp32 (or double, for checks)
}

static const CrfConstraints& when(bool use, const CrfConstraints& constraints) {
  static const CrfConstraints none;
  return use ? constraints : none;
}

torch::Tensor BertTaggerImpl::loss(const TaggerBatch& batch) {
  auto hidden = encode(batch);
  if (!isCrf()) {
    auto logits = atLeastFloat(subtokenLogits(hidden));
    return torch::nn::functional::cross_entropy(
        logits.reshape({-1, head.numLabels}), batch.labels.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  }
  auto emissions = wordEmissions(hidden, batch);
  auto llh = crfLogLikelihood(emissions, batch.wordMask, batch.wordLabels, crf->transitions,
                              crf->start_transitions, crf->end_transitions,
                              when(head.constrainTraining, head.constraints));
  return -llh.mean();
}

std::pair<torch::Tensor, torch::Tensor> BertTaggerImpl::decode(const TaggerBatch& batch) {
  auto hidden = encode(batch);
  torch::Tensor tags, probs;
  if (!isCrf()) {
    auto logits = atLeastFloat(subtokenLogits(hidden));
    auto index = batch.wordIndex.unsqueeze(-1).expand({-1, -1, logits.size(-1)});
    probs = torch::softmax(logits.gather(1, index), -1);
    tags = probs.argmax(-1);
  } else {
    auto emissions = wordEmissions(hidden, batch);
    const auto& constraints = when(head.constrainDecoding, head.constraints);
    tags = crfViterbiDecode(emissions, batch.wordMask, crf->transitions, crf->start_transitions,
                            crf->end_transitions, constraints);
    probs = crfMarginals(emissions, batch.wordMask, crf->transitions, crf->start_transitions, crf->end_transitions,
                         constraints);
  }
  auto score = probs.gather(-1, tags.clamp_min(0).unsqueeze(-1)).squeeze(-1);
  tags = tags.masked_fill(batch.wordMask.logical_not(), -1);
  return {tags, score.masked_fill(batch.wordMask.logical_not(), 0)};
}

}  // namespace ner
