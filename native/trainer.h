// The fused training loop: shuffling, length-bucketed batches, forward, loss, backward, clipping,
// AdamW with weight-decay exclusions, a linear schedule with warmup and gradient accumulation, all in
// C++ on the calling (worker) thread. TypeScript is called back only every `progressEvery` steps.
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <map>
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
  bool paused = false;    // stopped at the asked optimizer step (a resume point is due), the epoch not done
  bool finished = false;  // the epoch's batches are all done (or the run's last step is reached)
};

// Where the trainer is inside an epoch and what the epoch has summed so far: enough to continue the
// epoch exactly, in this process (after a pause) or in another (from a resume point).
struct EpochPosition {
  int64_t epoch = -1;      // -1: no epoch begun
  int64_t nextBatch = 0;   // micro-batches of the epoch's plan already trained
  EpochSummary summary;    // so far (meanLoss holds the sum of losses until the epoch ends)
  // The progress window being summed (reported every progressEvery micro-batches of the epoch).
  double windowLoss = 0;
  int64_t windowBatches = 0, windowTokens = 0, windowSentences = 0;
  uint64_t dropoutState = 0;  // the dropout stream at nextBatch
};

// Thrown when the loss, the gradients or (on the CPU) an update of the weights turns NaN or infinite;
// the weights are those before the failing step (on CUDA only for the loss check).
struct NonFiniteLossError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Trainer {
 public:
  Trainer(BertTagger model, torch::Device device, TrainOptions options, int64_t stepsPerEpoch);

  // Trains epoch `epoch` over `data` from where the trainer is in it (its start, or where a pause, a
  // cancel or a loaded resume point left it). The batch order comes from (seed, epoch) and the dropout
  // masks from the trainer's own stream, so a continued epoch is the one an uninterrupted run trains.
  // Stops early, at an optimizer-step boundary, when `cancel` is set or step() reaches stopAtStep (> 0).
  EpochSummary runEpoch(const EncodedDataset& data, int64_t epoch, const std::function<void(const TrainProgress&)>& onProgress,
                        const std::atomic<bool>& cancel, int64_t stopAtStep = -1);

  int64_t step() const { return step_; }
  int64_t totalSteps() const { return totalSteps_; }
  const TrainOptions& options() const { return options_; }
  const EpochPosition& position() const { return position_; }

  // The state a resume point needs besides the weights (trainer_state.cpp): the optimizer's moments and
  // step counts as named CPU tensors, and the step, epoch position and dropout stream.
  std::vector<std::pair<std::string, torch::Tensor>> stateTensors();
  // Restores them; every tensor is checked against the model (names, shapes, dtypes) and the position
  // against the data's plan before anything changes.
  void loadState(const std::map<std::string, torch::Tensor>& tensors, int64_t step, const EpochPosition& position,
                 const EncodedDataset& data);

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
  EpochPosition position_;
  DropoutStream dropout_;
};

// A 64-bit FNV-1a hash of the training data as the trainer sees it (ids, windows, word starts, labels,
// token types), as 16 hex digits: a resume point records it so that it is never applied to other data.
std::string datasetFingerprint(const EncodedDataset& data);

// Predicted tag and score for every owned word of every window, in window order (flattened).
struct Predictions {
  std::vector<int32_t> tags;
  std::vector<float> scores;
};
Predictions predictDataset(BertTagger& model, const EncodedDataset& data, int64_t batchSize, const torch::Device& device,
                           bool bf16);

}  // namespace ner
