#include "trainer.h"

#include <chrono>
#include <cstdlib>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <map>
#include <sstream>
#include <type_traits>

#include "adamw.h"
#include "compat.h"

namespace ner {

namespace {

bool isNoDecay(const std::string& name) {
  // HF run_ner / Trainer exclude biases and LayerNorm weights from weight decay.
  return name.find("bias") != std::string::npos || name.find("LayerNorm") != std::string::npos ||
         name.find("_norm") != std::string::npos;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The key torch::optim keeps a parameter's state under: the TensorImpl's address as a string (LibTorch
// 1.x, c10::guts::to_string, i.e. operator<<) or as a void* (later releases).
template <typename Key>
Key optimizerStateKey(c10::TensorImpl* impl) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream out;
    out << impl;
    return out.str();
  } else {
    return static_cast<Key>(impl);
  }
}

}  // namespace

Trainer::Trainer(BertTagger model, torch::Device device, TrainOptions options, int64_t stepsPerEpoch)
    : model_(std::move(model)), device_(device), options_(options) {
  if (options_.batchSize < 1) throw std::invalid_argument("batchSize must be at least 1");
  if (options_.gradientAccumulation < 1) throw std::invalid_argument("gradientAccumulation must be at least 1");
  if (options_.epochs < 1) throw std::invalid_argument("epochs must be at least 1");
  if (!device_.is_cuda() && (options_.bf16 || options_.tf32))
    throw std::invalid_argument("bf16 and tf32 take effect on CUDA only; this engine runs on the CPU");
  if (options_.tf32) at::globalContext().setFloat32MatmulPrecision("high");

  const int64_t optimizerStepsPerEpoch = (stepsPerEpoch + options_.gradientAccumulation - 1) / options_.gradientAccumulation;
  totalSteps_ = options_.maxSteps > 0 ? options_.maxSteps : optimizerStepsPerEpoch * options_.epochs;
  warmupSteps_ = options_.warmupSteps > 0 ? options_.warmupSteps : static_cast<int64_t>(options_.warmupRatio * totalSteps_);

  // Four groups: {encoder, head} x {decay, no decay}.
  std::vector<torch::Tensor> groups[4];
  for (const auto& p : model_->named_parameters(true)) {
    if (!p.value().requires_grad()) continue;  // fixed tables (DistilBERT's sinusoidal positions)
    const bool head = !model_->isEncoderParameter(p.key());
    groups[(head ? 2 : 0) + (isNoDecay(p.key()) ? 1 : 0)].push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> paramGroups;
  for (int g = 0; g < 4; ++g) {
    if (groups[g].empty()) continue;
    const double lr = g >= 2 ? options_.headLearningRate : options_.encoderLearningRate;
    auto groupOptions = std::make_unique<torch::optim::AdamWOptions>(lr);
    groupOptions->betas({options_.adamBeta1, options_.adamBeta2}).eps(options_.adamEpsilon)
        .weight_decay(g % 2 == 1 ? 0.0 : options_.weightDecay);
    paramGroups.emplace_back(groups[g], std::move(groupOptions));
    baseLearningRates_.push_back(lr);
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(paramGroups, torch::optim::AdamWOptions(options_.encoderLearningRate));
  const char* fusedEnv = std::getenv("NER_FUSED_ADAMW");
  fusedAdamW_ = NER_HAS_FUSED_ADAMW && device_.is_cuda() && !(fusedEnv && std::string(fusedEnv) == "0");
  const char* cpuAdamEnv = std::getenv("NER_CPU_ADAMW");
  cpuAdamW_ = !device_.is_cuda() && !(cpuAdamEnv && std::string(cpuAdamEnv) == "0");
  for (const auto& p : model_->parameters()) cpuAdamW_ = cpuAdamW_ && adamwCpuSupports(p);  // else torch's AdamW
  const char* guardEnv = std::getenv("NER_CPU_STEP_GUARD");
  cpuStepGuard_ = !(guardEnv && std::string(guardEnv) == "0");
}

torch::optim::AdamWParamState& Trainer::adamState(const torch::Tensor& param) {
  auto& state = optimizer_->state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  auto& slot = state[optimizerStateKey<Key>(param.unsafeGetTensorImpl())];
  if (!slot) {
    auto fresh = std::make_unique<torch::optim::AdamWParamState>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(param, at::MemoryFormat::Preserve));
    fresh->exp_avg_sq(torch::zeros_like(param, at::MemoryFormat::Preserve));
    slot = std::move(fresh);
  }
  return static_cast<torch::optim::AdamWParamState&>(*slot);
}

// AdamW as at::_fused_adamw_ computes it (the kernel of torch.optim.AdamW(fused=True): one multi-tensor
// launch per parameter group instead of ~10 per parameter), on the optimizer's own state, so the moments,
// step counts and saveState()/loadState() are those of optimizer_->step(). The math is the same:
// p *= 1 - lr * wd; m, v updated; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
void Trainer::fusedAdamWStep() {
#if NER_HAS_FUSED_ADAMW
  const auto stepOptions = torch::TensorOptions().dtype(torch::kFloat).device(device_);
  std::map<int64_t, torch::Tensor> stepTensors;  // the kernel reads the step count from a float tensor on the device
  for (auto& group : optimizer_->param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, expAvgs, expAvgSqs, steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& s = adamState(p);
      s.step(s.step() + 1);
      auto& stepTensor = stepTensors[s.step()];
      if (!stepTensor.defined()) stepTensor = torch::full({}, static_cast<double>(s.step()), stepOptions);
      params.push_back(p);
      grads.push_back(p.grad());
      expAvgs.push_back(s.exp_avg());
      expAvgSqs.push_back(s.exp_avg_sq());
      steps.push_back(stepTensor);
    }
    if (params.empty()) continue;
    at::_fused_adamw_(params, grads, expAvgs, expAvgSqs, /*max_exp_avg_sqs=*/at::TensorList(), steps, o.lr(),
                      std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(), o.eps(), /*amsgrad=*/false,
                      /*maximize=*/false);
  }
#else
  optimizer_->step();
#endif
}

// The CPU update, one pass over each parameter (adamw.h) with the gradient scaled by `gradScale` (the
// clipping coefficient) on the way in. With keepBackup the weights before the update land in lastGood_.
// Returns false if an updated weight is not finite. Only used when every parameter is contiguous float32
// on the CPU (checked once, in the constructor).
bool Trainer::cpuAdamWStep(float gradScale, bool keepBackup) {
  bool finite = true;
  size_t index = 0;
  for (auto& group : optimizer_->param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      torch::Tensor* backup = keepBackup ? &lastGood_[index] : nullptr;
      ++index;
      if (!p.grad().defined()) continue;
      auto& s = adamState(p);
      s.step(s.step() + 1);
      AdamWScalars scalars;
      scalars.lr = o.lr();
      scalars.beta1 = std::get<0>(o.betas());
      scalars.beta2 = std::get<1>(o.betas());
      scalars.eps = o.eps();
      scalars.weightDecay = o.weight_decay();
      scalars.step = s.step();
      scalars.gradScale = gradScale;
      auto param = p.detach();
      auto expAvg = s.exp_avg(), expAvgSq = s.exp_avg_sq();
      finite &= adamwStepCpu(param, p.grad().contiguous(), expAvg, expAvgSq, scalars, backup);
    }
  }
  return finite;
}

double Trainer::learningRateFactor(int64_t step) const {
  // HF get_linear_schedule_with_warmup: rises linearly over warmup, then falls linearly to 0.
  if (step < warmupSteps_) return static_cast<double>(step) / std::max<int64_t>(1, warmupSteps_);
  return std::max(0.0, static_cast<double>(totalSteps_ - step) / std::max<int64_t>(1, totalSteps_ - warmupSteps_));
}

torch::Tensor Trainer::gradientNorm() {
  // clip_grad_norm_'s total: the 2-norm of the per-parameter 2-norms (a tensor: no host/device sync).
  std::vector<torch::Tensor> norms;
  for (auto& p : model_->parameters())
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2));
  return torch::stack(norms).norm(2);
}

// Gradients are dropped rather than zeroed (set_to_none, the Trainer's default since PyTorch 2.0): the
// next backward then hands its fresh gradient over instead of adding it into a zeroed buffer, which
// for the dense word-embedding gradient saves two passes over 30k x H floats per step.
void Trainer::clearGradients() {
  for (auto& p : model_->parameters())
    if (p.grad().defined()) p.mutable_grad().reset();
}

// On the CPU a step is committed only if it is sound, so that a failing fit leaves the weights of
// the last good step: the gradient norm must be finite (it is computed for clipping anyway), and
// the update must leave every weight finite (a huge learning rate, or lr * weight decay >> 1, can
// overflow float32 after a step whose loss was finite); otherwise the update is undone. The CPU AdamW
// pass writes each weight's old value into lastGood_ as it goes and checks the new one, so the guard
// costs one extra store stream, not a copy and a check pass. The optimizer's moments are not rolled
// back: set training up again before continuing. On CUDA these checks would cost a device sync per
// step and are skipped; the loss check still stops training. NER_CPU_STEP_GUARD=0 skips the backup and
// check on the CPU too (the loss and gradient-norm checks stay).
void Trainer::optimizerStep(int64_t epoch) {
  const double factor = learningRateFactor(step_);
  auto& groups = optimizer_->param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(baseLearningRates_[g] * factor);
  torch::NoGradGuard noGrad;
  const auto totalNorm = gradientNorm();
  const bool onCpu = !device_.is_cuda();
  const std::string where = "step " + std::to_string(step_ + 1) + " (epoch " + std::to_string(epoch + 1) + ")";
  // clip_grad_norm_'s coefficient, computed as its float32 tensor ops do: min(1, max / (norm + 1e-6)).
  float gradScale = 1.0f;
  if (onCpu) {
    const float norm = totalNorm.item<float>();
    if (!std::isfinite(norm)) {
      clearGradients();
      throw NonFiniteLossError("gradients became non-finite at " + where + "; weights are kept from the step before");
    }
    if (options_.maxGradNorm > 0) gradScale = std::min(1.0f, static_cast<float>(options_.maxGradNorm) / (norm + 1e-6f));
  }
  if (!cpuAdamW_ && options_.maxGradNorm > 0) {
    auto coefficient = (options_.maxGradNorm / (totalNorm + 1e-6)).clamp_max(1.0);
    for (auto& p : model_->parameters())
      if (p.grad().defined()) p.grad().mul_(coefficient);
  }
  // Parameters in optimizer order, which is the order of lastGood_.
  std::vector<torch::Tensor> params;
  for (auto& group : groups)
    for (auto& p : group.params()) params.push_back(p);
  const bool guarded = cpuStepGuard_ && onCpu;
  std::vector<bool> touched(params.size());
  for (size_t i = 0; i < params.size(); ++i) touched[i] = params[i].grad().defined();
  if (guarded && lastGood_.size() != params.size()) lastGood_.assign(params.size(), torch::Tensor());
  if (guarded && !cpuAdamW_)
    for (size_t i = 0; i < params.size(); ++i) {
      if (!touched[i]) continue;
      if (!lastGood_[i].defined()) lastGood_[i] = torch::empty_like(params[i]);
      lastGood_[i].copy_(params[i]);
    }
  auto restore = [&] {
    if (guarded)
      for (size_t i = 0; i < params.size(); ++i)
        if (touched[i] && lastGood_[i].defined()) params[i].detach().copy_(lastGood_[i]);
    clearGradients();
  };
  bool finite = true;
  try {
    if (cpuAdamW_)
      finite = cpuAdamWStep(gradScale, guarded);
    else if (fusedAdamW_)
      fusedAdamWStep();
    else
      optimizer_->step();
  } catch (const std::exception& e) {
    // e.g. "value cannot be converted to type float without overflow" for a learning rate beyond float32
    const auto* c10error = dynamic_cast<const c10::Error*>(&e);
    restore();
    throw std::runtime_error("the optimizer failed at " + where + ": " + (c10error ? c10error->what_without_backtrace() : e.what()) +
                             " (is the learning rate too large for float32?)" + (guarded ? "; weights are kept from the step before" : ""));
  }
  if (guarded && !cpuAdamW_)
    for (const auto& p : params) finite &= torch::isfinite(p).all().item<bool>();
  if (guarded && !finite) {
    restore();
    throw NonFiniteLossError("weights became non-finite in the update at " + where +
                             " (learning rate or weight decay too large?); they are restored to those of the step before");
  }
  clearGradients();
  ++step_;
}

// The dropout stream at the start of an epoch: a function of (seed, epoch) only, so an epoch repeats.
static uint64_t epochDropoutState(int64_t seed, int64_t epoch) {
  return static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL ^ (static_cast<uint64_t>(epoch) + 1) * 0xD1B54A32D192ED03ULL;
}

EpochSummary Trainer::runEpoch(const EncodedDataset& data, int64_t epoch,
                               const std::function<void(const TrainProgress&)>& onProgress,
                               const std::atomic<bool>& cancel, int64_t stopAtStep) {
  std::mt19937_64 rng(static_cast<uint64_t>(options_.seed) * 1000003ULL + static_cast<uint64_t>(epoch));
  const auto plan = planTrainingBatches(data, options_.batchSize, rng, options_.lengthGrouping);
  const int64_t batches = static_cast<int64_t>(plan.batches.size());
  if (position_.epoch != epoch) {
    position_ = EpochPosition();
    position_.epoch = epoch;
    position_.summary.epoch = epoch;
    position_.dropoutState = epochDropoutState(options_.seed, epoch);
  }
  auto& p = position_;
  EpochSummary& summary = p.summary;
  summary.cancelled = summary.paused = false;
  dropout_.state = p.dropoutState;
  DropoutStreamScope dropoutScope(&dropout_);
  model_->train();
  const auto start = std::chrono::steady_clock::now();
  const bool onCpu = !device_.is_cuda();
  auto lossSum = torch::zeros({}, torch::TensorOptions().device(device_).dtype(torch::kDouble));
  auto windowStart = start;
  // NER_PROFILE=trace.json: LibTorch's profiler over this epoch, written as a Chrome trace (what
  // BENCHMARKS.md's step breakdown is made from: scripts/profile-step.mjs).
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  if (const char* trace = std::getenv("NER_PROFILE"); trace && *trace)
    profile = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(trace));
  auto phaseStart = std::chrono::steady_clock::now();
  auto lap = [&](double& phase) {
    const auto now = std::chrono::steady_clock::now();
    phase += std::chrono::duration<double>(now - phaseStart).count();
    phaseStart = now;
  };
  // The device-side loss sum joins the window's host sum at reports and when the call returns.
  auto settleLoss = [&]() {
    p.windowLoss += lossSum.item<double>();  // the one sync per report
    lossSum.zero_();
  };
  for (; p.nextBatch < batches; ++p.nextBatch) {
    // Stops only between optimizer steps: a resume point never holds half an accumulated gradient.
    if (p.nextBatch % options_.gradientAccumulation == 0) {
      if (cancel.load()) {
        summary.cancelled = true;
        break;
      }
      if (stopAtStep > 0 && step_ >= stopAtStep) {
        summary.paused = true;
        break;
      }
    }
    if (step_ >= totalSteps_) break;
    const auto& windows = plan.batches[p.nextBatch];
    phaseStart = std::chrono::steady_clock::now();
    auto batch = makeBatch(data, windows, device_);
    lap(summary.phases.batch);
    // CUDA dropout (torch's, and the attention kernels') draws from the device generator: seeded from the
    // stream each step, so that it too repeats and resumes.
    if (!onCpu) {
      auto generator = at::globalContext().defaultGenerator(device_);
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(dropout_.next());
    }
    torch::Tensor loss;
    {
      RECORD_FUNCTION("ner::forward", std::vector<c10::IValue>());
      compat::CudaAutocast autocast(options_.bf16);
      loss = model_->loss(batch);
    }
    // On the CPU the check is free (work is synchronous); on CUDA it waits for the progress report.
    if (onCpu && !std::isfinite(loss.item<double>())) {
      clearGradients();
      throw NonFiniteLossError("loss became non-finite at step " + std::to_string(step_ + 1) +
                               " (epoch " + std::to_string(epoch + 1) + "); weights are kept from the step before");
    }
    lap(summary.phases.forward);
    {
      RECORD_FUNCTION("ner::backward", std::vector<c10::IValue>());
      (loss / options_.gradientAccumulation).backward();
    }
    lap(summary.phases.backward);
    lossSum += loss.detach();
    ++p.windowBatches;
    p.windowTokens += batch.realTokens;
    p.windowSentences += static_cast<int64_t>(windows.size());
    summary.tokens += batch.realTokens;
    summary.sentences += static_cast<int64_t>(windows.size());
    summary.paddedTokens += batch.inputIds.numel();
    if ((p.nextBatch + 1) % options_.gradientAccumulation == 0) {
      RECORD_FUNCTION("ner::optimizer", std::vector<c10::IValue>());
      optimizerStep(epoch);
      lap(summary.phases.optimizer);
    }
    ++summary.steps;
    if (summary.steps % options_.progressEvery == 0 || summary.steps == batches) {
      settleLoss();
      const double meanLoss = p.windowLoss / p.windowBatches;
      if (!std::isfinite(meanLoss))
        throw NonFiniteLossError("loss became non-finite before step " + std::to_string(step_) + " (epoch " +
                                 std::to_string(epoch + 1) + ")");
      const double seconds = secondsSince(windowStart);
      TrainProgress progress;
      progress.epoch = epoch;
      progress.step = step_;
      progress.totalSteps = totalSteps_;
      progress.loss = meanLoss;
      progress.learningRate = baseLearningRates_.empty() ? 0 : baseLearningRates_[0] * learningRateFactor(step_);
      progress.tokensPerSecond = p.windowTokens / std::max(seconds, 1e-9);
      progress.sentencesPerSecond = p.windowSentences / std::max(seconds, 1e-9);
      progress.elapsedSeconds = summary.seconds + secondsSince(start);
      summary.meanLoss += p.windowLoss;
      if (onProgress) onProgress(progress);
      p.windowLoss = 0;
      p.windowTokens = p.windowSentences = p.windowBatches = 0;
      windowStart = std::chrono::steady_clock::now();
    }
  }
  settleLoss();
  p.dropoutState = dropout_.state;
  summary.finished = !summary.cancelled && !summary.paused;
  if (summary.finished) {
    // Flush a partial accumulation at the end of the epoch (not at a run's last step: there is none).
    if (p.nextBatch % options_.gradientAccumulation != 0 && p.nextBatch == batches && step_ < totalSteps_) optimizerStep(epoch);
    p.dropoutState = dropout_.state;
  }
  summary.seconds += secondsSince(start);
  EpochSummary out = summary;
  out.meanLoss = (summary.meanLoss + p.windowLoss) / std::max<int64_t>(1, summary.steps);  // the epoch so far
  return out;
}

Predictions predictDataset(BertTagger& model, const EncodedDataset& data, int64_t batchSize, const torch::Device& device,
                           bool bf16) {
  torch::NoGradGuard noGrad;
  model->eval();
  const auto plan = planEvaluationBatches(data, batchSize);
  Predictions out;
  std::vector<int64_t> wordsPerWindow(data.numWindows(), 0), offsets(data.numWindows() + 1, 0);
  for (int64_t w = 0; w < data.numWindows(); ++w) {
    for (int64_t i = data.windowOffsets[w]; i < data.windowOffsets[w + 1]; ++i) wordsPerWindow[w] += data.wordStarts[i] != 0;
    offsets[w + 1] = offsets[w] + wordsPerWindow[w];
  }
  out.tags.assign(offsets.back(), 0);
  out.scores.assign(offsets.back(), 0);
  for (const auto& windows : plan.batches) {
    auto batch = makeBatch(data, windows, device);
    std::pair<torch::Tensor, torch::Tensor> decoded;
    {
      compat::CudaAutocast autocast(bf16 && device.is_cuda());
      decoded = model->decode(batch);
    }
    auto tags = decoded.first.to(torch::kCPU, torch::kInt32).contiguous();
    auto scores = decoded.second.to(torch::kCPU, torch::kFloat).contiguous();
    const auto W = tags.size(1);
    for (size_t b = 0; b < windows.size(); ++b) {
      const auto w = windows[b];
      std::copy_n(tags.data_ptr<int32_t>() + b * W, wordsPerWindow[w], out.tags.begin() + offsets[w]);
      std::copy_n(scores.data_ptr<float>() + b * W, wordsPerWindow[w], out.scores.begin() + offsets[w]);
    }
  }
  model->train();
  return out;
}

}  // namespace ner
