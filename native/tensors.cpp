#include "tensors.h"

#include <sstream>
#include <stdexcept>

namespace ner {

torch::ScalarType scalarTypeFromName(const std::string& name) {
  if (name == "F32") return torch::kFloat;
  if (name == "F16") return torch::kHalf;
  if (name == "BF16") return torch::kBFloat16;
  if (name == "F64") return torch::kDouble;
  if (name == "I64") return torch::kInt64;
  if (name == "I32") return torch::kInt32;
  if (name == "I16") return torch::kInt16;
  if (name == "I8") return torch::kInt8;
  if (name == "U8") return torch::kUInt8;
  if (name == "BOOL") return torch::kBool;
  throw std::invalid_argument("unsupported tensor dtype \"" + name + "\"");
}

torch::Tensor hostTensorView(void* data, torch::ScalarType dtype, const std::vector<int64_t>& shape) {
  return torch::from_blob(data, shape, torch::TensorOptions().dtype(dtype));
}

static std::string shapeString(at::IntArrayRef shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

WeightLoadReport loadNamedWeights(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& weights,
                                  const std::vector<std::string>& requiredPrefixes) {
  torch::NoGradGuard noGrad;
  WeightLoadReport report;
  auto targets = module.named_parameters(true);
  for (const auto& buffer : module.named_buffers(true)) targets.insert(buffer.key(), buffer.value());
  std::map<std::string, bool> used;
  for (const auto& target : targets) {
    const auto& name = target.key();
    auto found = weights.find(name);
    if (found == weights.end()) {
      for (const auto& prefix : requiredPrefixes)
        if (name.rfind(prefix, 0) == 0) throw std::invalid_argument("checkpoint is missing tensor \"" + name + "\"");
      report.initialised.push_back(name);
      continue;
    }
    const auto& source = found->second;
    if (!source.is_floating_point())
      throw std::invalid_argument("tensor \"" + name + "\" has dtype " + std::string(c10::toString(source.scalar_type())) +
                                  ", expected a floating-point type");
    if (source.sizes() != target.value().sizes())
      throw std::invalid_argument("tensor \"" + name + "\" has shape " + shapeString(source.sizes()) + ", expected " +
                                  shapeString(target.value().sizes()));
    target.value().copy_(source);
    used[name] = true;
  }
  for (const auto& [name, tensor] : weights)
    if (!used.count(name)) report.unused.push_back(name);
  return report;
}

std::vector<std::pair<std::string, torch::Tensor>> exportNamedWeights(torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters(true))
    out.emplace_back(p.key(), p.value().detach().to(torch::kCPU, torch::kFloat).contiguous());
  for (const auto& b : module.named_buffers(true))
    out.emplace_back(b.key(), b.value().detach().to(torch::kCPU).contiguous());
  return out;
}

}  // namespace ner
