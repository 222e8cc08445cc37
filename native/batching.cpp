#include "batching.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace ner {

void EncodedDataset::validate(int64_t vocabSize, int64_t numLabels, int64_t maxPositions, int64_t typeVocabSize) const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("dataset: " + what); };
  if (windowOffsets.size() < 2) fail("it holds no sentences (empty dataset)");
  if (windowOffsets.front() != 0) fail("windowOffsets must start at 0");
  if (static_cast<size_t>(windowOffsets.back()) != inputIds.size())
    fail("windowOffsets ends at " + std::to_string(windowOffsets.back()) + " but inputIds has " +
         std::to_string(inputIds.size()) + " entries");
  if (wordStarts.size() != inputIds.size())
    fail("wordStarts has " + std::to_string(wordStarts.size()) + " entries, inputIds " + std::to_string(inputIds.size()));
  if (!labels.empty() && labels.size() != inputIds.size())
    fail("labels has " + std::to_string(labels.size()) + " entries, inputIds " + std::to_string(inputIds.size()));
  if (!tokenTypeIds.empty() && tokenTypeIds.size() != inputIds.size())
    fail("tokenTypeIds has " + std::to_string(tokenTypeIds.size()) + " entries, inputIds " + std::to_string(inputIds.size()));
  for (int64_t w = 0; w < numWindows(); ++w) {
    const auto len = windowLength(w);
    if (len <= 0) fail("window " + std::to_string(w) + " is empty or its offsets decrease");
    if (len > maxPositions)
      fail("window " + std::to_string(w) + " has " + std::to_string(len) + " tokens, more than max_position_embeddings (" +
           std::to_string(maxPositions) + ")");
  }
  for (size_t i = 0; i < inputIds.size(); ++i) {
    if (inputIds[i] < 0 || inputIds[i] >= vocabSize)
      fail("input id " + std::to_string(inputIds[i]) + " at position " + std::to_string(i) + " is outside the vocabulary (size " +
           std::to_string(vocabSize) + ")");
    if (!labels.empty() && labels[i] != -100 && (labels[i] < 0 || labels[i] >= numLabels))
      fail("label id " + std::to_string(labels[i]) + " at position " + std::to_string(i) + " is out of range [0, " +
           std::to_string(numLabels) + ")");
    if (!tokenTypeIds.empty() && (tokenTypeIds[i] < 0 || tokenTypeIds[i] >= typeVocabSize))
      fail("token type id " + std::to_string(tokenTypeIds[i]) + " at position " + std::to_string(i) + " is out of range");
  }
}

static std::vector<std::vector<int64_t>> chunk(const std::vector<int64_t>& order, int64_t batchSize) {
  std::vector<std::vector<int64_t>> batches;
  for (size_t i = 0; i < order.size(); i += batchSize)
    batches.emplace_back(order.begin() + i, order.begin() + std::min(order.size(), i + static_cast<size_t>(batchSize)));
  return batches;
}

BatchPlan planTrainingBatches(const EncodedDataset& data, int64_t batchSize, std::mt19937_64& rng, LengthGrouping grouping,
                              int64_t poolBatches) {
  std::vector<int64_t> order(data.numWindows());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const auto longer = [&](int64_t a, int64_t b) { return data.windowLength(a) > data.windowLength(b); };
  if (grouping == LengthGrouping::Pools) {
    const size_t pool = static_cast<size_t>(batchSize * poolBatches);
    for (size_t start = 0; start < order.size(); start += pool) {
      auto end = order.begin() + std::min(order.size(), start + pool);
      std::stable_sort(order.begin() + start, end,
                       [&](int64_t a, int64_t b) { return data.windowLength(a) < data.windowLength(b); });
    }
    BatchPlan plan{chunk(order, batchSize)};
    std::shuffle(plan.batches.begin(), plan.batches.end(), rng);
    return plan;
  }
  if (grouping == LengthGrouping::Megabatch) {
    // transformers.trainer_pt_utils.get_length_grouped_indices, step for step.
    const int64_t multiplier = std::max<int64_t>(1, std::min<int64_t>(static_cast<int64_t>(order.size()) / (batchSize * 4), 50));
    const size_t mega = static_cast<size_t>(multiplier * batchSize);
    size_t longestMega = 0;
    for (size_t start = 0; start < order.size(); start += mega) {
      std::stable_sort(order.begin() + start, order.begin() + std::min(order.size(), start + mega), longer);
      if (data.windowLength(order[start]) > data.windowLength(order[longestMega])) longestMega = start;
    }
    std::swap(order[0], order[longestMega]);  // the longest window leads, so an out-of-memory shows at once
  }
  return BatchPlan{chunk(order, batchSize)};
}

BatchPlan planEvaluationBatches(const EncodedDataset& data, int64_t batchSize) {
  std::vector<int64_t> order(data.numWindows());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return data.windowLength(a) < data.windowLength(b); });
  return BatchPlan{chunk(order, batchSize)};
}

TaggerBatch makeBatch(const EncodedDataset& data, const std::vector<int64_t>& windows, const torch::Device& device) {
  const int64_t B = static_cast<int64_t>(windows.size());
  int64_t T = 0, W = 1;
  for (auto w : windows) {
    T = std::max(T, data.windowLength(w));
    int64_t words = 0;
    for (int64_t i = data.windowOffsets[w]; i < data.windowOffsets[w + 1]; ++i) words += data.wordStarts[i] != 0;
    W = std::max(W, words);
  }
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto inputIds = torch::zeros({B, T}, i64), attention = torch::zeros({B, T}, i64), types = torch::zeros({B, T}, i64);
  auto labels = torch::full({B, T}, -100, i64);
  auto wordIndex = torch::zeros({B, W}, i64), wordLabels = torch::zeros({B, W}, i64);
  auto wordMask = torch::zeros({B, W}, torch::TensorOptions().dtype(torch::kBool));
  auto wordLengths = torch::zeros({B}, i64);
  auto ids = inputIds.accessor<int64_t, 2>(), att = attention.accessor<int64_t, 2>(), tt = types.accessor<int64_t, 2>();
  auto lab = labels.accessor<int64_t, 2>(), wi = wordIndex.accessor<int64_t, 2>(), wl = wordLabels.accessor<int64_t, 2>();
  auto wm = wordMask.accessor<bool, 2>();
  auto lengths = wordLengths.accessor<int64_t, 1>();
  TaggerBatch batch;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = data.windowOffsets[windows[b]], len = data.windowLength(windows[b]);
    int64_t words = 0;
    for (int64_t t = 0; t < len; ++t) {
      const int64_t i = start + t;
      ids[b][t] = data.inputIds[i];
      att[b][t] = 1;
      if (!data.tokenTypeIds.empty()) tt[b][t] = data.tokenTypeIds[i];
      if (!data.labels.empty()) lab[b][t] = data.labels[i];
      if (data.wordStarts[i]) {
        wi[b][words] = t;
        wm[b][words] = true;
        // A word's label lives on its first sub-token; unlabelled (-100) words score as tag 0 but
        // only happen in prediction-only data, where labels are unused.
        wl[b][words] = data.labels.empty() || data.labels[i] < 0 ? 0 : data.labels[i];
        ++words;
      }
    }
    // The CRF needs mask[:, 0] on: a window with no owned word keeps one dummy position (dropped later).
    if (words == 0) {
      wm[b][0] = true;
      words = 1;
    }
    lengths[b] = words;
    batch.realTokens += len;
    batch.words += words;
  }
  const bool async = device.is_cuda();
  batch.inputIds = inputIds.to(device, async);
  batch.attentionMask = attention.to(device, async);
  batch.tokenTypeIds = types.to(device, async);
  batch.labels = labels.to(device, async);
  batch.wordIndex = wordIndex.to(device, async);
  batch.wordMask = wordMask.to(device, async);
  batch.wordLabels = wordLabels.to(device, async);
  batch.wordLengths = wordLengths;
  return batch;
}

}  // namespace ner
