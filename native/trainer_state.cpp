// What a resume point holds besides the weights, as plain named tensors and numbers (written by the
// TypeScript side as safetensors + JSON; nothing here deserialises code), and its validation.
#include <cmath>
#include <set>

#include "trainer.h"

namespace ner {

namespace {

std::string shapeText(at::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void fnv1a(uint64_t& hash, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 0x100000001B3ULL;
}

template <typename T>
void fnv1aVector(uint64_t& hash, const std::vector<T>& v) {
  const uint64_t n = v.size();
  fnv1a(hash, &n, sizeof n);
  if (!v.empty()) fnv1a(hash, v.data(), v.size() * sizeof(T));
}

}  // namespace

std::string datasetFingerprint(const EncodedDataset& data) {
  uint64_t hash = 0xCBF29CE484222325ULL;
  fnv1aVector(hash, data.inputIds);
  fnv1aVector(hash, data.windowOffsets);
  fnv1aVector(hash, data.wordStarts);
  fnv1aVector(hash, data.labels);
  fnv1aVector(hash, data.tokenTypeIds);
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

std::vector<std::pair<std::string, torch::Tensor>> Trainer::stateTensors() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const auto& config = model_->encoderConfig;
  for (const auto& named : model_->named_parameters(true)) {
    const auto& param = named.value();
    if (!param.requires_grad()) continue;
    auto& s = adamState(param);
    if (s.step() == 0) continue;  // never updated: nothing to keep
    const auto name = checkpointKey(config, named.key());
    out.emplace_back("exp_avg." + name, s.exp_avg().detach().to(torch::kCPU, torch::kFloat).contiguous());
    out.emplace_back("exp_avg_sq." + name, s.exp_avg_sq().detach().to(torch::kCPU, torch::kFloat).contiguous());
    out.emplace_back("step." + name, torch::tensor(static_cast<int64_t>(s.step()), torch::kInt64));
  }
  return out;
}

void Trainer::loadState(const std::map<std::string, torch::Tensor>& tensors, int64_t step, const EpochPosition& position,
                        const EncodedDataset& data) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("resume point: " + what); };
  if (step < 0 || step > totalSteps_) fail("step " + std::to_string(step) + " is outside [0, " + std::to_string(totalSteps_) + "]");
  if (position.epoch < -1 || position.epoch >= options_.epochs)
    fail("epoch " + std::to_string(position.epoch) + " is outside [0, " + std::to_string(options_.epochs) + ")");
  if (position.epoch >= 0) {
    std::mt19937_64 rng(static_cast<uint64_t>(options_.seed) * 1000003ULL + static_cast<uint64_t>(position.epoch));
    const auto batches = static_cast<int64_t>(planTrainingBatches(data, options_.batchSize, rng, options_.lengthGrouping).batches.size());
    if (position.nextBatch < 0 || position.nextBatch > batches)
      fail("batch " + std::to_string(position.nextBatch) + " is outside the epoch's " + std::to_string(batches) + " batches");
    if (position.nextBatch % options_.gradientAccumulation != 0 && position.nextBatch != batches)
      fail("batch " + std::to_string(position.nextBatch) + " is not at an optimizer step");
  }
  const auto& s = position.summary;
  for (int64_t v : {s.steps, s.sentences, s.tokens, s.paddedTokens, position.windowBatches, position.windowTokens, position.windowSentences})
    if (v < 0) fail("a count in the epoch summary is negative");
  if (s.steps != position.nextBatch || position.windowBatches > s.steps) fail("the epoch summary does not match its position");
  for (double v : {s.meanLoss, s.seconds, position.windowLoss})
    if (!std::isfinite(v)) fail("a loss or time in the epoch summary is not finite");

  // Every trainable parameter has its moments (once a step was taken) and nothing else is there.
  const auto& config = model_->encoderConfig;
  std::set<std::string> expected;
  std::vector<std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, int64_t>> updates;
  for (const auto& named : model_->named_parameters(true)) {
    const auto& param = named.value();
    if (!param.requires_grad()) continue;
    const auto name = checkpointKey(config, named.key());
    auto find = [&](const std::string& key) -> const torch::Tensor* {
      expected.insert(key);
      auto it = tensors.find(key);
      return it == tensors.end() ? nullptr : &it->second;
    };
    const auto *m = find("exp_avg." + name), *v = find("exp_avg_sq." + name), *k = find("step." + name);
    if (!m && !v && !k && step == 0) continue;
    if (!m || !v || !k) fail("the optimizer state of \"" + name + "\" is incomplete (exp_avg, exp_avg_sq and step are needed)");
    for (const auto* t : {m, v})
      if (t->scalar_type() != torch::kFloat || t->sizes() != param.sizes())
        fail("optimizer tensor for \"" + name + "\" has shape " + shapeText(t->sizes()) + " (" + std::string(c10::toString(t->scalar_type())) +
             "), expected " + shapeText(param.sizes()) + " (Float)");
    if (k->scalar_type() != torch::kLong || k->numel() != 1) fail("step of \"" + name + "\" must be one int64");
    const int64_t paramStep = k->item<int64_t>();
    if (paramStep < 1 || paramStep > step) fail("step of \"" + name + "\" is " + std::to_string(paramStep) + ", outside [1, " + std::to_string(step) + "]");
    if (!torch::isfinite(*m).all().item<bool>() || !torch::isfinite(*v).all().item<bool>() || (*v < 0).any().item<bool>())
      fail("the moments of \"" + name + "\" hold non-finite or negative values");
    updates.emplace_back(param, *m, *v, paramStep);
  }
  for (const auto& [key, tensor] : tensors)
    if (!expected.count(key)) fail("unexpected tensor \"" + key + "\"");

  // All checked: apply.
  torch::NoGradGuard noGrad;
  for (auto& [param, m, v, paramStep] : updates) {
    auto& state = adamState(param);
    state.step(paramStep);
    state.exp_avg().copy_(m);
    state.exp_avg_sq().copy_(v);
  }
  step_ = step;
  position_ = position;
  position_.summary.cancelled = position_.summary.paused = position_.summary.finished = false;
}

}  // namespace ner
