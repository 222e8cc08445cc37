// The trainer's resume state between JS and C++: optimizer tensors out as typed arrays, and the position
// (step, epoch, batch, dropout stream, partial sums) as a plain object; in again, every field checked.
#include "trainer_state.h"

namespace ner::binding {

Napi::Object trainerStateToJs(Napi::Env env, Trainer& trainer, const EncodedDataset& data) {
  auto named = trainer.stateTensors();
  auto tensors = Napi::Array::New(env, named.size());
  for (size_t i = 0; i < named.size(); ++i) {
    auto entry = Napi::Object::New(env);
    const auto& tensor = named[i].second;
    entry.Set("name", named[i].first);
    entry.Set("shape", dimsToJs(env, tensor.sizes()));
    if (tensor.scalar_type() == torch::kLong) {
      entry.Set("dtype", "I64");
      auto values = Napi::BigInt64Array::New(env, tensor.numel());
      std::copy_n(tensor.data_ptr<int64_t>(), tensor.numel(), values.Data());
      entry.Set("data", values);
    } else {
      entry.Set("dtype", "F32");
      entry.Set("data", toFloat32Array(env, tensor));
    }
    tensors.Set(i, entry);
  }
  const auto& p = trainer.position();
  auto state = Napi::Object::New(env);
  state.Set("step", static_cast<double>(trainer.step()));
  state.Set("epoch", static_cast<double>(p.epoch));
  state.Set("nextBatch", static_cast<double>(p.nextBatch));
  state.Set("dropoutState", std::to_string(p.dropoutState));  // a uint64: as text, doubles would round it
  auto summary = Napi::Object::New(env);
  summary.Set("steps", static_cast<double>(p.summary.steps));
  summary.Set("sentences", static_cast<double>(p.summary.sentences));
  summary.Set("tokens", static_cast<double>(p.summary.tokens));
  summary.Set("paddedTokens", static_cast<double>(p.summary.paddedTokens));
  summary.Set("lossSum", p.summary.meanLoss);
  summary.Set("seconds", p.summary.seconds);
  state.Set("summary", summary);
  auto window = Napi::Object::New(env);
  window.Set("loss", p.windowLoss);
  window.Set("batches", static_cast<double>(p.windowBatches));
  window.Set("tokens", static_cast<double>(p.windowTokens));
  window.Set("sentences", static_cast<double>(p.windowSentences));
  state.Set("window", window);
  state.Set("dataFingerprint", datasetFingerprint(data));
  auto out = Napi::Object::New(env);
  out.Set("tensors", tensors);
  out.Set("state", state);
  return out;
}

void loadTrainerStateFromJs(const Napi::CallbackInfo& info, Trainer& trainer, const EncodedDataset& data) {
  if (!info[0].IsTypedArray()) throw std::invalid_argument("loadTrainerState: bytes must be a Uint8Array");
  auto bytes = info[0].As<Napi::Uint8Array>();
  if (!info[1].IsArray()) throw std::invalid_argument("loadTrainerState: entries must be an array");
  auto entries = info[1].As<Napi::Array>();
  std::map<std::string, torch::Tensor> tensors;
  for (uint32_t i = 0; i < entries.Length(); ++i) {
    auto e = requireObject(entries.Get(i), "trainer state entry");
    const auto name = optionalString(e, "name", "");
    const auto dtype = scalarTypeFromName(optionalString(e, "dtype", ""));
    const auto shape = requireDims(e, "shape");
    const double rawOffset = requireNumber(e, "byteOffset", 0, false), rawLength = requireNumber(e, "byteLength", 0, false);
    size_t expected = c10::elementSize(dtype);
    for (auto d : shape) expected *= static_cast<size_t>(d);
    if (!(rawOffset >= 0 && rawLength >= 0 && rawOffset + rawLength <= static_cast<double>(bytes.ByteLength())) ||
        static_cast<size_t>(rawLength) != expected)
      throw std::invalid_argument("trainer state tensor \"" + name + "\": byte range does not match its shape and dtype");
    if (tensors.count(name)) throw std::invalid_argument("trainer state tensor \"" + name + "\" is given twice");
    tensors[name] = hostTensorView(bytes.Data() + static_cast<size_t>(rawOffset), dtype, shape);
  }
  auto s = requireObject(info[2], "trainer state");
  auto integer = [](const Napi::Object& o, const char* key) {
    const double v = requireNumber(o, key, 0, false);
    if (!(std::floor(v) == v) || std::fabs(v) > 9007199254740991.0)
      throw std::invalid_argument(std::string("trainer state: ") + key + " must be an integer");
    return static_cast<int64_t>(v);
  };
  EpochPosition position;
  position.epoch = integer(s, "epoch");
  position.nextBatch = integer(s, "nextBatch");
  const auto dropout = optionalString(s, "dropoutState", "");
  if (dropout.empty() || dropout.size() > 20 || dropout.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument("trainer state: dropoutState must be a decimal uint64");
  position.dropoutState = std::stoull(dropout);
  auto summary = requireObject(s.Get("summary"), "trainer state summary");
  position.summary.epoch = position.epoch;
  position.summary.steps = integer(summary, "steps");
  position.summary.sentences = integer(summary, "sentences");
  position.summary.tokens = integer(summary, "tokens");
  position.summary.paddedTokens = integer(summary, "paddedTokens");
  position.summary.meanLoss = requireNumber(summary, "lossSum", 0, false);
  position.summary.seconds = requireNumber(summary, "seconds", 0, false);
  auto window = requireObject(s.Get("window"), "trainer state window");
  position.windowLoss = requireNumber(window, "loss", 0, false);
  position.windowBatches = integer(window, "batches");
  position.windowTokens = integer(window, "tokens");
  position.windowSentences = integer(window, "sentences");
  const auto fingerprint = optionalString(s, "dataFingerprint", "");
  if (fingerprint != datasetFingerprint(data))
    throw std::invalid_argument("resume point: it was made on other training data (fingerprint " + fingerprint + ", this data's " +
                                datasetFingerprint(data) + ")");
  trainer.loadState(tensors, integer(s, "step"), position, data);
}

}  // namespace ner::binding
