// Shared by the binding's files (native/binding/ is the only place that knows N-API): JS <-> C++
// conversions, exception translation and the Promise-returning worker.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>

#include "batching.h"
#include "compat.h"
#include "crf.h"
#include "heads.h"
#include "tensors.h"
#include "trainer.h"

namespace ner::binding {

inline std::string describe(const std::exception& e) {
  if (auto* c10error = dynamic_cast<const c10::Error*>(&e)) {
    if (compat::isOutOfMemory(*c10error)) return std::string("out of memory: ") + c10error->what_without_backtrace();
    return c10error->what_without_backtrace();
  }
  return e.what();
}

// Runs `body`; a C++ exception becomes a thrown JS Error.
template <typename F>
inline Napi::Value guarded(const Napi::Env& env, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, describe(e));
  } catch (...) {
    throw Napi::Error::New(env, "unknown native error");
  }
}

// ---- JS -> C++ ----------------------------------------------------------------------------------

inline Napi::Object requireObject(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject()) throw std::invalid_argument(what + " must be an object");
  return v.As<Napi::Object>();
}

inline double requireNumber(const Napi::Object& o, const char* key, double fallback, bool optional = true) {
  auto v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (optional) return fallback;
    throw std::invalid_argument(std::string("missing number \"") + key + "\"");
  }
  if (!v.IsNumber()) throw std::invalid_argument(std::string("\"") + key + "\" must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline bool optionalBool(const Napi::Object& o, const char* key, bool fallback) {
  auto v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) throw std::invalid_argument(std::string("\"") + key + "\" must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline std::string optionalString(const Napi::Object& o, const char* key, const std::string& fallback) {
  auto v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsString()) throw std::invalid_argument(std::string("\"") + key + "\" must be a string");
  return v.As<Napi::String>().Utf8Value();
}

template <typename T>
inline std::vector<T> typedArrayToVector(const Napi::Value& v, napi_typedarray_type type, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw std::invalid_argument(what + " must be a " +
                                (type == napi_int32_array ? "Int32Array" : type == napi_uint8_array ? "Uint8Array" : "Float32Array"));
  auto array = v.As<Napi::TypedArrayOf<T>>();
  return std::vector<T>(array.Data(), array.Data() + array.ElementLength());
}

// [rows, cols] from a flat typed array and its dims.
inline torch::Tensor tensorFromTyped(const Napi::Object& o, const char* key, const std::vector<int64_t>& shape, bool optional) {
  auto v = o.Get(key);
  if ((v.IsUndefined() || v.IsNull()) && optional) return {};
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (v.IsTypedArray()) {
    auto typed = v.As<Napi::TypedArray>();
    if (static_cast<int64_t>(typed.ElementLength()) != n)
      throw std::invalid_argument(std::string("\"") + key + "\" has " + std::to_string(typed.ElementLength()) +
                                  " values, expected " + std::to_string(n));
    if (typed.TypedArrayType() == napi_float32_array)
      return torch::from_blob(v.As<Napi::Float32Array>().Data(), shape, torch::kFloat).clone();
    if (typed.TypedArrayType() == napi_int32_array)
      return torch::from_blob(v.As<Napi::Int32Array>().Data(), shape, torch::kInt32).to(torch::kInt64);
  }
  throw std::invalid_argument(std::string("\"") + key + "\" must be a Float32Array or Int32Array");
}

inline std::vector<int64_t> requireDims(const Napi::Object& o, const char* key) {
  auto v = o.Get(key);
  if (!v.IsArray()) throw std::invalid_argument(std::string("\"") + key + "\" must be an array of dimensions");
  auto array = v.As<Napi::Array>();
  std::vector<int64_t> dims;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    auto d = array.Get(i);
    if (!d.IsNumber() || d.As<Napi::Number>().Int64Value() < 0) throw std::invalid_argument(std::string("bad dimension in \"") + key + "\"");
    dims.push_back(d.As<Napi::Number>().Int64Value());
  }
  return dims;
}

inline EncodedDataset datasetFromJs(const Napi::Value& value) {
  auto o = requireObject(value, "dataset");
  EncodedDataset data;
  data.inputIds = typedArrayToVector<int32_t>(o.Get("inputIds"), napi_int32_array, "dataset.inputIds");
  data.windowOffsets = typedArrayToVector<int32_t>(o.Get("windowOffsets"), napi_int32_array, "dataset.windowOffsets");
  for (int32_t start : typedArrayToVector<int32_t>(o.Get("wordStarts"), napi_int32_array, "dataset.wordStarts"))
    data.wordStarts.push_back(start != 0);
  if (!o.Get("labels").IsUndefined())
    data.labels = typedArrayToVector<int32_t>(o.Get("labels"), napi_int32_array, "dataset.labels");
  if (!o.Get("tokenTypeIds").IsUndefined())
    data.tokenTypeIds = typedArrayToVector<int32_t>(o.Get("tokenTypeIds"), napi_int32_array, "dataset.tokenTypeIds");
  return data;
}

inline EncoderConfig encoderConfigFromJs(const Napi::Object& o) {
  EncoderConfig c;
  c.family = parseEncoderFamily(optionalString(o, "family", "bert"));
  c.vocabSize = static_cast<int64_t>(requireNumber(o, "vocabSize", 0, false));
  c.hiddenSize = static_cast<int64_t>(requireNumber(o, "hiddenSize", 0, false));
  c.numHiddenLayers = static_cast<int64_t>(requireNumber(o, "numHiddenLayers", 0, false));
  c.numAttentionHeads = static_cast<int64_t>(requireNumber(o, "numAttentionHeads", 0, false));
  c.intermediateSize = static_cast<int64_t>(requireNumber(o, "intermediateSize", 0, false));
  c.maxPositionEmbeddings = static_cast<int64_t>(requireNumber(o, "maxPositionEmbeddings", 0, false));
  c.typeVocabSize = static_cast<int64_t>(requireNumber(o, "typeVocabSize", 2));
  const auto pad = o.Get("padTokenId");
  c.padTokenId = pad.IsNull() || pad.IsUndefined() ? -1 : static_cast<int64_t>(requireNumber(o, "padTokenId", 0, false));
  c.sinusoidalPositions = optionalBool(o, "sinusoidalPositions", false);
  c.layerNormEps = requireNumber(o, "layerNormEps", 1e-12);
  c.hiddenDropoutProb = requireNumber(o, "hiddenDropoutProb", 0.1);
  c.attentionProbsDropoutProb = requireNumber(o, "attentionProbsDropoutProb", 0.1);
  c.hiddenAct = optionalString(o, "hiddenAct", "gelu");
  for (int64_t v : {c.vocabSize, c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize, c.maxPositionEmbeddings})
    if (v < 1) throw std::invalid_argument("every size in the encoder config must be a positive integer");
  if (c.typeVocabSize < 0) throw std::invalid_argument("typeVocabSize must be 0 (none) or more");
  if (c.padTokenId < -1 || c.padTokenId >= c.vocabSize) throw std::invalid_argument("padTokenId must be null or an id below vocabSize");
  if (c.family == EncoderFamily::Roberta && c.padTokenId < 0) throw std::invalid_argument("RoBERTa encoders need a padTokenId (position ids count from it)");
  if (!(c.layerNormEps > 0)) throw std::invalid_argument("layerNormEps must be positive");
  if (!isKnownActivation(c.hiddenAct)) throw std::invalid_argument("unsupported hidden_act \"" + c.hiddenAct + "\"");
  return c;
}

inline CrfConstraints constraintsFromJs(const Napi::Object& o, int64_t numLabels) {
  CrfConstraints c;
  auto v = o.Get("constraints");
  if (v.IsUndefined() || v.IsNull()) return c;
  auto co = requireObject(v, "constraints");
  c.transitions = tensorFromTyped(co, "transitions", {numLabels, numLabels}, false).to(torch::kFloat);
  c.start = tensorFromTyped(co, "start", {numLabels}, false).to(torch::kFloat);
  c.end = tensorFromTyped(co, "end", {numLabels}, false).to(torch::kFloat);
  return c;
}

inline HeadConfig headConfigFromJs(const Napi::Object& o) {
  HeadConfig h;
  h.kind = parseHeadKind(optionalString(o, "kind", "softmax"));
  h.numLabels = static_cast<int64_t>(requireNumber(o, "numLabels", 0, false));
  h.classifierDropout = requireNumber(o, "classifierDropout", 0.1);
  h.lstmHiddenSize = static_cast<int64_t>(requireNumber(o, "lstmHiddenSize", 256));
  h.lstmLayers = static_cast<int64_t>(requireNumber(o, "lstmLayers", 1));
  h.attentionHeads = static_cast<int64_t>(requireNumber(o, "attentionHeads", 4));
  h.constrainDecoding = optionalBool(o, "constrainDecoding", true);
  h.constrainTraining = optionalBool(o, "constrainTraining", false);
  if (h.numLabels < 1) throw std::invalid_argument("numLabels must be at least 1");
  h.constraints = constraintsFromJs(o, h.numLabels);
  return h;
}

inline TrainOptions trainOptionsFromJs(const Napi::Object& o) {
  TrainOptions t;
  t.epochs = static_cast<int64_t>(requireNumber(o, "epochs", t.epochs));
  t.batchSize = static_cast<int64_t>(requireNumber(o, "batchSize", t.batchSize));
  t.gradientAccumulation = static_cast<int64_t>(requireNumber(o, "gradientAccumulation", t.gradientAccumulation));
  t.seed = static_cast<int64_t>(requireNumber(o, "seed", t.seed));
  t.progressEvery = std::max<int64_t>(1, static_cast<int64_t>(requireNumber(o, "progressEvery", t.progressEvery)));
  t.maxSteps = static_cast<int64_t>(requireNumber(o, "maxSteps", t.maxSteps));
  t.encoderLearningRate = requireNumber(o, "encoderLearningRate", t.encoderLearningRate);
  t.headLearningRate = requireNumber(o, "headLearningRate", t.headLearningRate);
  t.weightDecay = requireNumber(o, "weightDecay", t.weightDecay);
  t.warmupRatio = requireNumber(o, "warmupRatio", t.warmupRatio);
  t.warmupSteps = static_cast<int64_t>(requireNumber(o, "warmupSteps", t.warmupSteps));
  t.maxGradNorm = requireNumber(o, "maxGradNorm", t.maxGradNorm);
  t.adamBeta1 = requireNumber(o, "adamBeta1", t.adamBeta1);
  t.adamBeta2 = requireNumber(o, "adamBeta2", t.adamBeta2);
  t.adamEpsilon = requireNumber(o, "adamEpsilon", t.adamEpsilon);
  t.bf16 = optionalBool(o, "bf16", false);
  t.tf32 = optionalBool(o, "tf32", false);
  const auto grouping = o.Get("lengthGrouping");
  if (!grouping.IsUndefined()) {
    const std::string name = grouping.IsString() ? grouping.As<Napi::String>().Utf8Value() : "";
    if (name == "none") t.lengthGrouping = LengthGrouping::None;
    else if (name == "pools") t.lengthGrouping = LengthGrouping::Pools;
    else if (name == "megabatch") t.lengthGrouping = LengthGrouping::Megabatch;
    else throw std::invalid_argument("training options: lengthGrouping must be \"none\", \"pools\" or \"megabatch\"");
  }
  return t;
}

// ---- C++ -> JS ----------------------------------------------------------------------------------

inline Napi::Float32Array toFloat32Array(const Napi::Env& env, const torch::Tensor& t) {
  auto cpu = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  auto out = Napi::Float32Array::New(env, cpu.numel());
  std::memcpy(out.Data(), cpu.data_ptr<float>(), cpu.numel() * sizeof(float));
  return out;
}

inline Napi::Array dimsToJs(const Napi::Env& env, at::IntArrayRef sizes) {
  auto dims = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) dims.Set(i, Napi::Number::New(env, static_cast<double>(sizes[i])));
  return dims;
}

inline Napi::Object tensorToJs(const Napi::Env& env, const torch::Tensor& t) {
  auto o = Napi::Object::New(env);
  o.Set("dims", dimsToJs(env, t.sizes()));
  o.Set("data", toFloat32Array(env, t));
  return o;
}

inline Napi::Array stringsToJs(const Napi::Env& env, const std::vector<std::string>& items) {
  auto out = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) out.Set(i, items[i]);
  return out;
}

// ---- Async work ---------------------------------------------------------------------------------

// An AsyncWorker whose Execute runs `work` and whose result is built by `finish` on the JS thread.
// The engine's busy flag is released when the worker ends, whatever happened.
class TaskWorker : public Napi::AsyncWorker {
 public:
  TaskWorker(Napi::Env env, std::atomic<bool>* busy, std::function<void()> work, std::function<Napi::Value(Napi::Env)> finish)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), busy_(busy), work_(std::move(work)),
        finish_(std::move(finish)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  std::vector<Napi::ObjectReference> keepAlive;

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(describe(e));
    } catch (...) {
      SetError("unknown native error");
    }
  }
  void OnOK() override {
    release();
    Napi::Env env = Env();
    try {
      deferred_.Resolve(finish_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(env, describe(e)).Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    release();
    deferred_.Reject(e.Value());
  }

 private:
  void release() {
    if (busy_) busy_->store(false);
  }
  Napi::Promise::Deferred deferred_;
  std::atomic<bool>* busy_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> finish_;
};


void InitTagger(Napi::Env env, Napi::Object exports);
void InitCrf(Napi::Env env, Napi::Object exports);

}  // namespace ner::binding
