// The CRF ops exported to TypeScript (pytorch-crf layout), for tests and for users who score with them.
#include "napi_util.h"

namespace ner::binding {

namespace {

// Nested number arrays -> tensor (emissions [B][T][K], mask [B][T], ...).
torch::Tensor nestedToTensor(const Napi::Value& v, const std::string& what, torch::ScalarType dtype) {
  std::vector<double> values;
  std::vector<int64_t> shape;
  std::function<void(const Napi::Value&, size_t)> walk = [&](const Napi::Value& node, size_t depth) {
    if (node.IsArray()) {
      auto array = node.As<Napi::Array>();
      if (depth == shape.size()) shape.push_back(array.Length());
      else if (shape[depth] != static_cast<int64_t>(array.Length()))
        throw std::invalid_argument(what + " is ragged: rows of different lengths at depth " + std::to_string(depth));
      for (uint32_t i = 0; i < array.Length(); ++i) walk(array.Get(i), depth + 1);
      return;
    }
    if (!node.IsNumber() && !node.IsBoolean()) throw std::invalid_argument(what + " must hold only numbers");
    if (depth != shape.size()) throw std::invalid_argument(what + " is ragged");
    values.push_back(node.IsBoolean() ? node.As<Napi::Boolean>().Value() : node.As<Napi::Number>().DoubleValue());
  };
  walk(v, 0);
  if (values.empty()) throw std::invalid_argument(what + " is empty");
  return torch::tensor(values, torch::kDouble).reshape(shape).to(dtype);
}

struct CrfInputs {
  torch::Tensor emissions, mask, tags, transitions, start, end;
};

CrfInputs crfInputsFromJs(const Napi::Value& value, bool withTags) {
  auto o = requireObject(value, "crf input");
  CrfInputs in;
  in.emissions = nestedToTensor(o.Get("emissions"), "emissions", torch::kFloat);
  if (in.emissions.dim() != 3) throw std::invalid_argument("emissions must be [batch][time][tags]");
  auto mask = o.Get("mask");
  in.mask = mask.IsUndefined() ? torch::ones({in.emissions.size(0), in.emissions.size(1)}, torch::kBool)
                               : nestedToTensor(mask, "mask", torch::kBool);
  if (withTags) in.tags = nestedToTensor(o.Get("tags"), "tags", torch::kInt64);
  in.transitions = nestedToTensor(o.Get("transitions"), "transitions", torch::kFloat);
  in.start = nestedToTensor(o.Get("startTransitions"), "startTransitions", torch::kFloat);
  in.end = nestedToTensor(o.Get("endTransitions"), "endTransitions", torch::kFloat);
  return in;
}

Napi::Value nestedFromTensor(const Napi::Env& env, const torch::Tensor& t) {
  auto cpu = t.to(torch::kDouble).contiguous();
  if (cpu.dim() == 0) return Napi::Number::New(env, cpu.item<double>());
  auto out = Napi::Array::New(env, cpu.size(0));
  for (int64_t i = 0; i < cpu.size(0); ++i) out.Set(static_cast<uint32_t>(i), nestedFromTensor(env, cpu[i]));
  return out;
}

Napi::Value CrfLogLikelihood(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto in = crfInputsFromJs(info[0], true);
    torch::NoGradGuard noGrad;
    return nestedFromTensor(info.Env(), crfLogLikelihood(in.emissions, in.mask, in.tags, in.transitions, in.start, in.end));
  });
}

// Gradients of the summed log-likelihood (what pytorch-crf's backward gives), for checks.
Napi::Value CrfGradients(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto in = crfInputsFromJs(info[0], true);
    for (auto* t : {&in.emissions, &in.transitions, &in.start, &in.end}) t->requires_grad_(true);
    auto llh = crfLogLikelihood(in.emissions, in.mask, in.tags, in.transitions, in.start, in.end);
    llh.sum().backward();
    auto out = Napi::Object::New(info.Env());
    out.Set("logLikelihood", nestedFromTensor(info.Env(), llh.detach()));
    out.Set("emissions", nestedFromTensor(info.Env(), in.emissions.grad()));
    out.Set("transitions", nestedFromTensor(info.Env(), in.transitions.grad()));
    out.Set("startTransitions", nestedFromTensor(info.Env(), in.start.grad()));
    out.Set("endTransitions", nestedFromTensor(info.Env(), in.end.grad()));
    return out;
  });
}

Napi::Value CrfMarginals(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto in = crfInputsFromJs(info[0], false);
    return nestedFromTensor(info.Env(), crfMarginals(in.emissions, in.mask, in.transitions, in.start, in.end));
  });
}

Napi::Value CrfDecode(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto in = crfInputsFromJs(info[0], false);
    auto paths = crfViterbiDecode(in.emissions, in.mask, in.transitions, in.start, in.end).to(torch::kCPU);
    auto lengths = in.mask.to(torch::kInt64).sum(1);
    auto out = Napi::Array::New(info.Env(), paths.size(0));
    for (int64_t b = 0; b < paths.size(0); ++b) {
      const auto n = lengths[b].item<int64_t>();
      auto row = Napi::Array::New(info.Env(), n);
      for (int64_t t = 0; t < n; ++t) row.Set(static_cast<uint32_t>(t), Napi::Number::New(info.Env(), static_cast<double>(paths[b][t].item<int64_t>())));
      out.Set(static_cast<uint32_t>(b), row);
    }
    return out;
  });
}

}  // namespace

void InitCrf(Napi::Env env, Napi::Object exports) {
  exports.Set("crfLogLikelihood", Napi::Function::New(env, CrfLogLikelihood));
  exports.Set("crfGradients", Napi::Function::New(env, CrfGradients));
  exports.Set("crfDecode", Napi::Function::New(env, CrfDecode));
  exports.Set("crfMarginals", Napi::Function::New(env, CrfMarginals));
}

}  // namespace ner::binding
