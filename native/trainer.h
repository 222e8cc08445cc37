// The fused training loop: shuffling, length-bucketed batches, forward, loss, backward, clipping,
// AdamW with weight-decay exclusions, a linear schedule with warmup and gradient accumulation, all in
// C++ on the calling (worker) thread. TypeScript is called back only every `progressEvery` steps.
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <memory>
#include <random>

#include "batching.h"
#include "heads.h"

namespace ner {

struct TrainOptions {
  int64_t epochs = 3;
  int64_t batchSize = 32;
  int64_t gradientAccumulation = 1;
  int64_t seed = 42;
  int64_t progressEvery = 10;
  int64_t maxSteps = -1;          // optimizer steps in all; -1 = epochs * steps per epoch
  double encoderLearningRate = 5e-5;
  double headLearningRate = 5e-5;
  double weightDecay = 0.0;
  double warmupRatio = 0.0;
  int64_t warmupSteps = 0;        // wins over warmupRatio when > 0
  double maxGradNorm = 1.0;       // <= 0 disables clipping
  double adamBeta1 = 0.9, adamBeta2 = 0.999, adamEpsilon = 1e-8;
  LengthGrouping lengthGrouping = LengthGrouping::Pools;
  bool bf16 = false;              // CUDA only
  bool tf32 = false;              // CUDA only
};

struct TrainProgress {
  int64_t epoch = 0, step = 0, totalSteps = 0;
  double loss = 0, learningRate = 0, tokensPerSecond = 0, sentencesPerSecond = 0, elapsedSeconds = 0;
};

// Where an epoch's time went, in seconds (wall clock of the training thread; on CUDA the phases are
// asynchronous, so only the CPU figures mean what they say).
struct StepPhases {
  double batch = 0, forward = 0, backward = 0, optimizer = 0;
};

struct EpochSummary {
  int64_t epoch = 0, steps = 0, sentences = 0, tokens = 0;
  int64_t paddedTokens = 0;  // token positions computed, pads included (sum of batch x longest window)
  double meanLoss = 0, seconds = 0;
  StepPhases phases;
  bool cancelled = false;
};

// Thrown when the loss, the gradients or (on the CPU) an update of the weights turns NaN or infinite;
// the weights are those before the failing step (on CUDA only for the loss check).
struct NonFiniteLossError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Trainer {
 public:
  Trainer(BertTagger model, torch::Device device, TrainOptions options, int64_t stepsPerEpoch);

  // One epoch over `data` (seeded by options.seed + epoch, so runs and resumes repeat exactly).
  EpochSummary runEpoch(const EncodedDataset& data, int64_t epoch, const std::function<void(const TrainProgress&)>& onProgress,
                        const std::atomic<bool>& cancel);

  int64_t step() const { return step_; }
  int64_t totalSteps() const { return totalSteps_; }
  // Optimizer + schedule state, for resuming (torch's archive format, as bytes).
  std::string saveState();
  void loadState(const std::string& bytes);

 private:
  double learningRateFactor(int64_t step) const;
  void optimizerStep(int64_t epoch);
  // What optimizer_->step() does, on the optimizer's own state: CUDA + LibTorch 2.x in one fused
  // kernel per group; the CPU in one pass per parameter (adamw.h), the clipping coefficient folded in.
  void fusedAdamWStep();
  bool cpuAdamWStep(float gradScale, bool keepBackup);
  torch::optim::AdamWParamState& adamState(const torch::Tensor& param);
  torch::Tensor gradientNorm();
  void clearGradients();

  BertTagger model_;
  torch::Device device_;
  TrainOptions options_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  bool fusedAdamW_ = false;  // see fusedAdamWStep; NER_FUSED_ADAMW=0 in the environment turns it off
  bool cpuAdamW_ = false;    // see cpuAdamWStep; NER_CPU_ADAMW=0 falls back to torch::optim::AdamW
  bool cpuStepGuard_ = true;  // see optimizerStep; NER_CPU_STEP_GUARD=0 in the environment turns it off
  std::vector<double> baseLearningRates_;  // per parameter group
  int64_t step_ = 0, totalSteps_ = 0, warmupSteps_ = 0;
  std::vector<torch::Tensor> lastGood_;  // CPU: the weights before the current optimizer step (see optimizerStep)
};

// Predicted tag and score for every owned word of every window, in window order (flattened).
struct Predictions {
  std::vector<int32_t> tags;
  std::vector<float> scores;
  std::vector<int32_t> wordsPerWindow;
};
Predictions predictDataset(BertTagger& model, const EncodedDataset& data, int64_t batchSize, const torch::Device& device,
                           bool bf16);

}  // namespace ner
