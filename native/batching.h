// The encoded dataset handed over once from TypeScript, and the batches cut from it.
// Windows are [CLS] sub-tokens [SEP]; wordStarts marks the first sub-token of each word the window
// is responsible for; labels are per sub-token (-100 = not scored).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <vector>

#include "heads.h"

namespace ner {

struct EncodedDataset {
  std::vector<int32_t> inputIds;       // all windows, concatenated
  std::vector<int32_t> windowOffsets;  // windows + 1 entries
  std::vector<uint8_t> wordStarts;     // per sub-token
  std::vector<int32_t> labels;         // per sub-token; may be empty (prediction only)
  std::vector<int32_t> tokenTypeIds;   // per sub-token; may be empty (all zero)

  int64_t numWindows() const { return static_cast<int64_t>(windowOffsets.size()) - 1; }
  int64_t windowLength(int64_t w) const { return windowOffsets[w + 1] - windowOffsets[w]; }
  // Throws std::invalid_argument naming the first inconsistency (lengths, offsets, label range, ids).
  void validate(int64_t vocabSize, int64_t numLabels, int64_t maxPositions, int64_t typeVocabSize) const;
};

struct BatchPlan {
  std::vector<std::vector<int64_t>> batches;  // window indices of each batch
};

// How training batches are cut (training.groupByLength).
enum class LengthGrouping {
  None,       // random order (HF's default RandomSampler): batches pad to their longest, often far
  Pools,      // shuffle, sort by length inside pools of `poolBatches` batches, shuffle the batches (default)
  Megabatch,  // HF group_by_length (LengthGroupedSampler): megabatches of min(n / (4 x batch), 50) batches,
              // each sorted longest first, taken in order, the longest batch of all first
};

// Training order for one epoch, from `rng` (seeded per epoch by the trainer).
BatchPlan planTrainingBatches(const EncodedDataset& data, int64_t batchSize, std::mt19937_64& rng,
                              LengthGrouping grouping = LengthGrouping::Pools, int64_t poolBatches = 50);
// Evaluation order: sorted by length (least padding), every window exactly once.
BatchPlan planEvaluationBatches(const EncodedDataset& data, int64_t batchSize);

// Pads the windows to the batch's own longest and builds the word-level index tensors, on `device`.
TaggerBatch makeBatch(const EncodedDataset& data, const std::vector<int64_t>& windows, const torch::Device& device);

}  // namespace ner
