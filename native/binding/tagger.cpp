// NativeTagger: the JS handle on one BERT tagger (encoder + head) and its trainer.
#include "napi_util.h"
#include "trainer_state.h"

namespace ner::binding {

namespace {

torch::Device chooseDevice(const std::string& requested) {
  if (requested == "cpu") return torch::kCPU;
  if (requested == "cuda") {
    if (!torch::cuda::is_available()) throw std::invalid_argument("device \"cuda\" was asked for, but CUDA is not available");
    return torch::kCUDA;
  }
  if (requested == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  throw std::invalid_argument("device must be \"auto\", \"cpu\" or \"cuda\", got \"" + requested + "\"");
}

// A batch given directly as padded [B, T] arrays (forward / loss on raw ids). Word starts are the
// positions whose label is not -100 (HF's first-sub-token convention) when labels are given.
TaggerBatch batchFromArrays(const Napi::Object& o, const EncoderConfig& config, const torch::Device& device) {
  const auto batchSize = static_cast<int64_t>(requireNumber(o, "batchSize", 0, false));
  const auto length = static_cast<int64_t>(requireNumber(o, "length", 0, false));
  if (batchSize < 1 || length < 1) throw std::invalid_argument("the batch is empty");
  if (length > config.maxSequenceLength())
    throw std::invalid_argument("sequence length " + std::to_string(length) + " exceeds the " + std::to_string(config.maxSequenceLength()) +
                                " positions the encoder has (max_position_embeddings " + std::to_string(config.maxPositionEmbeddings) + ")");
  TaggerBatch batch;
  batch.inputIds = tensorFromTyped(o, "inputIds", {batchSize, length}, false).to(torch::kInt64);
  batch.attentionMask = tensorFromTyped(o, "attentionMask", {batchSize, length}, false).to(torch::kInt64);
  batch.tokenTypeIds = tensorFromTyped(o, "tokenTypeIds", {batchSize, length}, true);
  if (!batch.tokenTypeIds.defined()) batch.tokenTypeIds = torch::zeros_like(batch.inputIds);
  auto outOfRange = [](const torch::Tensor& t, int64_t limit) { return (t < 0).any().item<bool>() || (t >= limit).any().item<bool>(); };
  if (outOfRange(batch.inputIds, config.vocabSize))
    throw std::invalid_argument("input id outside the vocabulary (size " + std::to_string(config.vocabSize) + ")");
  if (outOfRange(batch.tokenTypeIds, std::max<int64_t>(1, config.typeVocabSize)))
    throw std::invalid_argument(config.typeVocabSize == 0 ? std::string("this encoder has no token types: tokenTypeIds must be 0")
                                                          : "token type id outside [0, " + std::to_string(config.typeVocabSize) + ")");
  batch.labels = tensorFromTyped(o, "labels", {batchSize, length}, true);
  if (batch.labels.defined()) {
    // Word-level view for the CRF heads: the labelled positions, left-aligned.
    auto scored = batch.labels != -100;
    auto counts = scored.sum(1);
    const int64_t W = std::max<int64_t>(1, counts.max().item<int64_t>());
    batch.wordIndex = torch::zeros({batchSize, W}, torch::kInt64);
    batch.wordLabels = torch::zeros({batchSize, W}, torch::kInt64);
    batch.wordMask = torch::zeros({batchSize, W}, torch::kBool);
    batch.wordLengths = counts.clamp_min(1);
    for (int64_t b = 0; b < batchSize; ++b) {
      auto positions = scored[b].nonzero().squeeze(1);
      const auto n = positions.size(0);
      if (n == 0) {
        batch.wordMask[b][0] = true;
        continue;
      }
      batch.wordIndex[b].slice(0, 0, n).copy_(positions);
      batch.wordLabels[b].slice(0, 0, n).copy_(batch.labels[b].index_select(0, positions));
      batch.wordMask[b].slice(0, 0, n).fill_(true);
    }
    if ((batch.labels != -100).logical_and((batch.labels < 0).logical_or(batch.labels >= 1 << 30)).any().item<bool>())
      throw std::invalid_argument("label ids must be -100 or non-negative");
  }
  for (auto* t : {&batch.inputIds, &batch.attentionMask, &batch.tokenTypeIds, &batch.labels, &batch.wordIndex, &batch.wordLabels, &batch.wordMask})
    if (t->defined()) *t = t->to(device);
  return batch;
}

class NativeTagger : public Napi::ObjectWrap<NativeTagger> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeTagger",
                       {InstanceMethod("loadWeights", &NativeTagger::LoadWeights),
                        InstanceMethod("forward", &NativeTagger::Forward),
                        InstanceMethod("exportWeights", &NativeTagger::ExportWeights),
                        InstanceMethod("setupTraining", &NativeTagger::SetupTraining),
                        InstanceMethod("trainEpoch", &NativeTagger::TrainEpoch),
                        InstanceMethod("predict", &NativeTagger::Predict),
                        InstanceMethod("cancel", &NativeTagger::Cancel),
                        InstanceMethod("saveTrainerState", &NativeTagger::SaveTrainerState),
                        InstanceMethod("loadTrainerState", &NativeTagger::LoadTrainerState),
                        InstanceMethod("dispose", &NativeTagger::Dispose),
                        InstanceAccessor("device", &NativeTagger::DeviceName, nullptr)});
  }

  // new NativeTagger({ encoder: {...}, head: {...}, device: "auto"|"cpu"|"cuda", seed, initializerRange })
  explicit NativeTagger(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTagger>(info), device_(torch::kCPU) {
    guarded(info.Env(), [&]() -> Napi::Value {
      auto o = requireObject(info[0], "tagger options");
      auto encoderConfig = encoderConfigFromJs(requireObject(o.Get("encoder"), "options.encoder"));
      auto headConfig = headConfigFromJs(requireObject(o.Get("head"), "options.head"));
      device_ = chooseDevice(optionalString(o, "device", "auto"));
      torch::manual_seed(static_cast<uint64_t>(requireNumber(o, "seed", 42)));
      model_ = BertTagger(encoderConfig, headConfig);
      model_->initWeights(requireNumber(o, "initializerRange", 0.02));
      model_->to(device_);
      return info.Env().Undefined();
    });
  }

 private:
  // Claims the tagger for one call at a time; the worker releases it.
  void claim() {
    requireLive();
    if (busy_.exchange(true)) throw std::runtime_error("the engine is busy with another call; await it first");
  }
  void requireLive() const {
    if (!model_) throw std::runtime_error("this tagger has been disposed");
  }

  // dispose(): frees the model, trainer and training data now (not at garbage collection).
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (busy_.load()) throw std::runtime_error("the engine is busy with another call; await it before dispose()");
      trainer_.reset();
      trainData_.reset();
      model_ = BertTagger(nullptr);
      return info.Env().Undefined();
    });
  }

  template <typename Work, typename Finish>
  Napi::Value runAsync(const Napi::CallbackInfo& info, Work work, Finish finish, std::vector<Napi::Object> keep = {}) {
    claim();
    auto* worker = new TaskWorker(info.Env(), &busy_, work, finish);
    for (auto& o : keep) worker->keepAlive.push_back(Napi::Persistent(o));
    auto promise = worker->promise();
    worker->Queue();
    return promise;
  }

  Napi::Value DeviceName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_.is_cuda() ? "cuda" : "cpu"); }

  // loadWeights(bytes: Uint8Array, entries: [{name, dtype, shape, byteOffset, byteLength}], requiredPrefixes: string[],
  //             { labelRows?: number[], skipMismatched?: boolean }) with checkpoint names; labelRows maps each label to
  //             its checkpoint row (-1 = keep init); skipMismatched keeps the init of tensors whose shape differs.
  Napi::Value LoadWeights(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      requireLive();
      if (!info[0].IsTypedArray()) throw std::invalid_argument("loadWeights: bytes must be a Uint8Array");
      auto bytes = info[0].As<Napi::Uint8Array>();
      if (!info[1].IsArray()) throw std::invalid_argument("loadWeights: entries must be an array");
      auto entries = info[1].As<Napi::Array>();
      auto weights = std::make_shared<std::map<std::string, torch::Tensor>>();
      for (uint32_t i = 0; i < entries.Length(); ++i) {
        auto e = requireObject(entries.Get(i), "weight entry");
        const auto name = optionalString(e, "name", "");
        const auto dtype = scalarTypeFromName(optionalString(e, "dtype", ""));
        const auto shape = requireDims(e, "shape");
        // Checked as doubles: a negative or huge offset must not wrap around size_t into the buffer.
        const double rawOffset = requireNumber(e, "byteOffset", 0, false), rawLength = requireNumber(e, "byteLength", 0, false);
        if (!(rawOffset >= 0 && rawLength >= 0 && rawOffset + rawLength <= static_cast<double>(bytes.ByteLength())))
          throw std::invalid_argument("tensor \"" + name + "\": byte range lies outside the " + std::to_string(bytes.ByteLength()) +
                                      "-byte buffer");
        const auto offset = static_cast<size_t>(rawOffset);
        const auto length = static_cast<size_t>(rawLength);
        size_t expected = c10::elementSize(dtype);
        for (auto d : shape) expected *= static_cast<size_t>(d);
        if (offset + length > bytes.ByteLength() || length != expected)
          throw std::invalid_argument("tensor \"" + name + "\": byte range does not match its shape and dtype");
        (*weights)[moduleKey(model_->encoderConfig, name)] = hostTensorView(bytes.Data() + offset, dtype, shape);
      }
      LabelRowMap labelRows;
      bool skipMismatched = false;
      Napi::Value rowsValue;
      if (info.Length() > 3 && info[3].IsObject()) {
        auto options = info[3].As<Napi::Object>();
        skipMismatched = optionalBool(options, "skipMismatched", false);
        rowsValue = options.Get("labelRows");
      }
      if (!rowsValue.IsEmpty() && rowsValue.IsArray()) {
        auto rows = rowsValue.As<Napi::Array>();
        for (uint32_t i = 0; i < rows.Length(); ++i) {
          auto v = rows.Get(i);
          if (!v.IsNumber()) throw std::invalid_argument("loadWeights: labelRows must hold integers");
          labelRows.rows.push_back(v.As<Napi::Number>().Int64Value());
        }
        labelRows.tensors = model_->labelIndexedTensors();
      }
      std::vector<std::string> required;
      if (info[2].IsArray()) {
        auto prefixes = info[2].As<Napi::Array>();
        for (uint32_t i = 0; i < prefixes.Length(); ++i) required.push_back(prefixes.Get(i).ToString().Utf8Value());
      }
      auto report = std::make_shared<WeightLoadReport>();
      return runAsync(
          info,
          [this, weights, required, report, labelRows, skipMismatched]() {
            *report = loadNamedWeights(*model_, *weights, required, labelRows, skipMismatched);
          },
          [this, report](Napi::Env env) -> Napi::Value {
            auto out = Napi::Object::New(env);
            for (auto& name : report->initialised) name = checkpointKey(model_->encoderConfig, name);
            for (auto& name : report->unused) name = checkpointKey(model_->encoderConfig, name);
            out.Set("initialised", stringsToJs(env, report->initialised));
            for (auto& entry : report->mismatched) entry = checkpointKey(model_->encoderConfig, entry);
            out.Set("unused", stringsToJs(env, report->unused));
            out.Set("mismatched", stringsToJs(env, report->mismatched));
            return out;
          },
          {bytes});
    });
  }

  // forward({ inputIds, attentionMask, tokenTypeIds?, labels?, batchSize, length }) in eval mode.
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      requireLive();
      auto batch = std::make_shared<TaggerBatch>(batchFromArrays(requireObject(info[0], "forward input"), model_->encoderConfig, device_));
      auto result = std::make_shared<std::vector<torch::Tensor>>();
      return runAsync(
          info,
          [this, batch, result]() {
            torch::NoGradGuard noGrad;
            model_->eval();
            auto hidden = model_->encode(*batch);
            result->push_back(hidden);
            if (!model_->isCrf()) {
              result->push_back(model_->subtokenLogits(hidden));
            } else if (batch->wordIndex.defined()) {
              result->push_back(model_->wordEmissions(hidden, *batch));
            }
            if (batch->labels.defined()) result->push_back(model_->loss(*batch));
            model_->train();
          },
          [result, batch](Napi::Env env) -> Napi::Value {
            auto out = Napi::Object::New(env);
            out.Set("lastHiddenState", tensorToJs(env, (*result)[0]));
            if (result->size() > 1) out.Set("logits", tensorToJs(env, (*result)[1]));
            if (result->size() > 2) out.Set("loss", Napi::Number::New(env, (*result)[2].item<double>()));
            return out;
          });
    });
  }

  // exportWeights() -> [{ name, shape, data: Float32Array }] (fp32, CPU)
  Napi::Value ExportWeights(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      auto named = std::make_shared<std::vector<std::pair<std::string, torch::Tensor>>>();
      return runAsync(
          info,
          [this, named]() {
            *named = exportNamedWeights(*model_);
            for (auto& entry : *named) entry.first = checkpointKey(model_->encoderConfig, entry.first);
          },
          [named](Napi::Env env) -> Napi::Value {
            auto out = Napi::Array::New(env, named->size());
            for (size_t i = 0; i < named->size(); ++i) {
              auto entry = Napi::Object::New(env);
              entry.Set("name", (*named)[i].first);
              entry.Set("shape", dimsToJs(env, (*named)[i].second.sizes()));
              entry.Set("data", toFloat32Array(env, (*named)[i].second));
              out.Set(i, entry);
            }
            return out;
          });
    });
  }

  // setupTraining(dataset, options) -> { stepsPerEpoch, totalSteps }: validates and keeps the dataset.
  Napi::Value SetupTraining(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      requireLive();
      if (busy_.load()) throw std::runtime_error("the engine is busy with another call; await it first");
      auto data = std::make_shared<EncodedDataset>(datasetFromJs(info[0]));
      const auto& c = model_->encoderConfig;
      data->validate(c.vocabSize, model_->head.numLabels, c.maxSequenceLength(), std::max<int64_t>(1, c.typeVocabSize));
      if (data->labels.empty()) throw std::invalid_argument("dataset: training data needs labels");
      auto options = trainOptionsFromJs(requireObject(info[1], "training options"));
      if (options.batchSize < 1) throw std::invalid_argument("batchSize must be at least 1");  // before dividing by it
      const int64_t stepsPerEpoch = (data->numWindows() + options.batchSize - 1) / options.batchSize;
      trainer_ = std::make_unique<Trainer>(model_, device_, options, stepsPerEpoch);
      trainData_ = data;
      options_ = options;
      auto out = Napi::Object::New(info.Env());
      out.Set("stepsPerEpoch", Napi::Number::New(info.Env(), static_cast<double>(stepsPerEpoch)));
      out.Set("totalSteps", Napi::Number::New(info.Env(), static_cast<double>(trainer_->totalSteps())));
      return out;
    });
  }

  // trainEpoch(epoch, onProgress?) -> Promise<EpochSummary>. Progress arrives every `progressEvery` steps.
  Napi::Value TrainEpoch(const Napi::CallbackInfo& info);

  // predict(dataset, { batchSize, bf16 }) -> Promise<{ tags: Int32Array, scores: Float32Array }>: one entry per word
  // start, in window order (the caller maps them back to words).
  Napi::Value Predict(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      requireLive();
      auto data = std::make_shared<EncodedDataset>(datasetFromJs(info[0]));
      const auto& c = model_->encoderConfig;
      data->validate(c.vocabSize, model_->head.numLabels, c.maxSequenceLength(), std::max<int64_t>(1, c.typeVocabSize));
      auto options = requireObject(info[1], "predict options");
      const auto batchSize = static_cast<int64_t>(requireNumber(options, "batchSize", 32));
      if (batchSize < 1) throw std::invalid_argument("predict: batchSize must be at least 1");
      const bool bf16 = optionalBool(options, "bf16", false);
      if (bf16 && !device_.is_cuda()) throw std::invalid_argument("predict: bf16 takes effect on CUDA only; this engine runs on the CPU");
      auto result = std::make_shared<Predictions>();
      return runAsync(
          info, [this, data, batchSize, result, bf16]() { *result = predictDataset(model_, *data, batchSize, device_, bf16); },
          [result](Napi::Env env) -> Napi::Value {
            auto out = Napi::Object::New(env);
            auto tags = Napi::Int32Array::New(env, result->tags.size());
            std::copy(result->tags.begin(), result->tags.end(), tags.Data());
            auto scores = Napi::Float32Array::New(env, result->scores.size());
            std::copy(result->scores.begin(), result->scores.end(), scores.Data());
            out.Set("tags", tags);
            out.Set("scores", scores);
            return out;
          });
    });
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    cancel_.store(true);
    return info.Env().Undefined();
  }

  // saveTrainerState() -> { tensors: [{ name, dtype: "F32" | "I64", shape, data }], state: {...} } (trainer_state.cpp)
  Napi::Value SaveTrainerState(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (!trainer_) throw std::runtime_error("no training has been set up");
      if (busy_.load()) throw std::runtime_error("the engine is busy with another call; await it first");
      return trainerStateToJs(info.Env(), *trainer_, *trainData_);
    });
  }

  // loadTrainerState(bytes, entries, state) with what saveTrainerState gave (trainer_state.cpp)
  Napi::Value LoadTrainerState(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (!trainer_) throw std::runtime_error("call setupTraining before loadTrainerState");
      if (busy_.load()) throw std::runtime_error("the engine is busy with another call; await it first");
      loadTrainerStateFromJs(info, *trainer_, *trainData_);
      return info.Env().Undefined();
    });
  }

  BertTagger model_{nullptr};
  torch::Device device_;
  std::unique_ptr<Trainer> trainer_;
  std::shared_ptr<EncodedDataset> trainData_;
  TrainOptions options_;
  std::atomic<bool> busy_{false};
  std::atomic<bool> cancel_{false};
};

// Runs one epoch on a worker thread; progress goes through a queue to the JS callback.
class EpochWorker : public Napi::AsyncProgressQueueWorker<TrainProgress> {
 public:
  EpochWorker(Napi::Env env, std::atomic<bool>* busy, std::atomic<bool>* cancel, Trainer* trainer,
              std::shared_ptr<EncodedDataset> data, int64_t epoch, int64_t stopAtStep, Napi::Function onProgress)
      : Napi::AsyncProgressQueueWorker<TrainProgress>(env), deferred_(Napi::Promise::Deferred::New(env)), busy_(busy),
        cancel_(cancel), trainer_(trainer), data_(std::move(data)), epoch_(epoch), stopAtStep_(stopAtStep) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    try {
      summary_ = trainer_->runEpoch(*data_, epoch_, [&](const TrainProgress& p) { progress.Send(&p, 1); }, *cancel_, stopAtStep_);
    } catch (const std::exception& e) {
      SetError(describe(e));
    } catch (...) {
      SetError("unknown native error during training");
    }
  }
  void OnProgress(const TrainProgress* p, size_t count) override {
    if (onProgress_.IsEmpty()) return;
    Napi::Env env = Env();
    for (size_t i = 0; i < count; ++i) {
      auto o = Napi::Object::New(env);
      o.Set("epoch", static_cast<double>(p[i].epoch));
      o.Set("step", static_cast<double>(p[i].step));
      o.Set("totalSteps", static_cast<double>(p[i].totalSteps));
      o.Set("loss", p[i].loss);
      o.Set("learningRate", p[i].learningRate);
      o.Set("tokensPerSecond", p[i].tokensPerSecond);
      o.Set("sentencesPerSecond", p[i].sentencesPerSecond);
      o.Set("elapsedSeconds", p[i].elapsedSeconds);
      try {
        onProgress_.Call({o});
      } catch (const Napi::Error& e) {
        cancel_->store(true);  // a throwing callback stops training cleanly at the next step
        callbackError_ = e.Message();
      }
    }
  }
  void OnOK() override {
    busy_->store(false);
    Napi::Env env = Env();
    auto o = Napi::Object::New(env);
    o.Set("epoch", static_cast<double>(summary_.epoch));
    o.Set("steps", static_cast<double>(summary_.steps));
    o.Set("sentences", static_cast<double>(summary_.sentences));
    o.Set("tokens", static_cast<double>(summary_.tokens));
    o.Set("meanLoss", summary_.meanLoss);
    o.Set("seconds", summary_.seconds);
    o.Set("paddedTokens", static_cast<double>(summary_.paddedTokens));
    auto phases = Napi::Object::New(env);
    phases.Set("batch", summary_.phases.batch);
    phases.Set("forward", summary_.phases.forward);
    phases.Set("backward", summary_.phases.backward);
    phases.Set("optimizer", summary_.phases.optimizer);
    o.Set("phaseSeconds", phases);
    o.Set("cancelled", summary_.cancelled);
    o.Set("paused", summary_.paused);
    o.Set("finished", summary_.finished);
    o.Set("nextBatch", static_cast<double>(trainer_->position().nextBatch));
    o.Set("globalStep", static_cast<double>(trainer_->step()));
    if (!callbackError_.empty()) o.Set("callbackError", callbackError_);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    busy_->store(false);
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::atomic<bool>* busy_;
  std::atomic<bool>* cancel_;
  Trainer* trainer_;
  std::shared_ptr<EncodedDataset> data_;
  int64_t epoch_;
  int64_t stopAtStep_;
  Napi::FunctionReference onProgress_;
  EpochSummary summary_;
  std::string callbackError_;
};

Napi::Value NativeTagger::TrainEpoch(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (!trainer_) throw std::runtime_error("call setupTraining before trainEpoch");
    if (!info[0].IsNumber()) throw std::invalid_argument("trainEpoch: epoch must be a number");
    Napi::Function onProgress;
    if (info.Length() > 1 && info[1].IsFunction()) onProgress = info[1].As<Napi::Function>();
    int64_t stopAtStep = -1;
    if (info.Length() > 2 && info[2].IsObject()) stopAtStep = static_cast<int64_t>(requireNumber(info[2].As<Napi::Object>(), "stopAtStep", -1));
    claim();
    cancel_.store(false);
    auto* worker = new EpochWorker(info.Env(), &busy_, &cancel_, trainer_.get(), trainData_, info[0].As<Napi::Number>().Int64Value(),
                                   stopAtStep, onProgress);
    auto promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

}  // namespace

void InitTagger(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeTagger", NativeTagger::Define(env));
}

}  // namespace ner::binding
