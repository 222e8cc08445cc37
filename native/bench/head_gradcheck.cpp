// Gradient check of the whole training loss of each head (encoder + head + loss, CRF backward
// included) against central finite differences, in double precision with dropout off.
// Exits 1 on any mismatch.  Usage: head_gradcheck
#include <torch/torch.h>

#include <cstdio>
#include <random>

#include "heads.h"

using namespace ner;

namespace {

TaggerBatch makeBatch() {
  // Two windows of lengths 7 and 4: [CLS] words... [SEP]; word starts at the first sub-token of each word.
  TaggerBatch b;
  b.inputIds = torch::tensor({{1, 5, 9, 12, 7, 30, 2}, {1, 17, 8, 2, 0, 0, 0}}, torch::kInt64);
  b.attentionMask = torch::tensor({{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0, 0}}, torch::kInt64);
  b.tokenTypeIds = torch::zeros_like(b.inputIds);
  // Sub-token 3 of window 0 continues word 2 (not scored).
  b.labels = torch::tensor({{-100, 1, 2, -100, 0, 3, -100}, {-100, 4, 0, -100, -100, -100, -100}}, torch::kInt64);
  b.wordIndex = torch::tensor({{1, 2, 4, 5}, {1, 2, 0, 0}}, torch::kInt64);
  b.wordMask = torch::tensor({{1, 1, 1, 1}, {1, 1, 0, 0}}, torch::kBool);
  b.wordLabels = torch::tensor({{1, 2, 0, 3}, {4, 0, 0, 0}}, torch::kInt64);
  b.wordLengths = torch::tensor({4, 2}, torch::kInt64);
  return b;
}

bool checkHead(HeadKind kind) {
  EncoderConfig bert;
  bert.vocabSize = 40;
  bert.hiddenSize = 8;
  bert.numHiddenLayers = 1;
  bert.numAttentionHeads = 2;
  bert.intermediateSize = 12;
  bert.maxPositionEmbeddings = 16;
  bert.hiddenAct = "gelu";
  HeadConfig head;
  head.kind = kind;
  head.numLabels = 5;
  head.lstmHiddenSize = 4;
  head.attentionHeads = 2;
  torch::manual_seed(3);
  BertTagger model(bert, head);
  model->initWeights(0.3);  // large enough that every path matters
  model->to(torch::kDouble);
  model->eval();            // dropout off: the loss is a deterministic function of the weights
  const auto batch = makeBatch();

  model->zero_grad();
  model->loss(batch).backward();
  std::mt19937 rng(11);
  double worst = 0;
  int checked = 0;
  bool ok = true;
  for (auto& p : model->named_parameters(true)) {
    auto values = p.value().data().view({-1});
    auto grads = p.value().grad().view({-1});
    std::uniform_int_distribution<int64_t> pick(0, values.numel() - 1);
    for (int k = 0; k < 3; ++k) {
      const auto i = pick(rng);
      const double saved = values[i].item<double>(), eps = 1e-6;
      torch::NoGradGuard noGrad;
      values[i] = saved + eps;
      const double up = model->loss(batch).item<double>();
      values[i] = saved - eps;
      const double down = model->loss(batch).item<double>();
      values[i] = saved;
      const double numeric = (up - down) / (2 * eps), analytic = grads[i].item<double>();
      const double error = std::abs(numeric - analytic) / std::max(1.0, std::abs(numeric));
      worst = std::max(worst, error);
      ++checked;
      if (error > 1e-6) {
        ok = false;
        std::printf("  MISMATCH %s[%ld]: analytic %.9g numeric %.9g\n", p.key().c_str(), static_cast<long>(i), analytic, numeric);
      }
    }
  }
  std::printf("%-16s %3d entries of %3zu tensors, worst relative error %.2e  %s\n", headKindName(kind).c_str(), checked,
              model->named_parameters(true).size(), worst, ok ? "ok" : "FAILED");
  return ok;
}

}  // namespace

int main() {
  bool ok = true;
  for (auto kind : {HeadKind::Softmax, HeadKind::Crf, HeadKind::BiLstmCrf, HeadKind::BiLstmAttnCrf}) ok = checkHead(kind) && ok;
  return ok ? 0 : 1;
}
