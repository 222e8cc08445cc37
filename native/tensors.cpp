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

// Whether source fits target in every dimension but the label-indexed ones (transitions: square).
static bool fitsBeyondLabels(const torch::Tensor& target, const torch::Tensor& source, int labelDims) {
  if (source.dim() != target.dim() || source.dim() < labelDims) return false;
  for (int64_t d = labelDims; d < target.dim(); ++d)
    if (source.size(d) != target.size(d)) return false;
  return labelDims < 2 || source.size(1) == source.size(0);
}

// target[i] (and target[i][j] for two label dimensions) = source[rows[i]] where rows[i] >= 0.
static void copyLabelRows(torch::Tensor& target, const torch::Tensor& source, const std::string& name, int labelDims,
                          const std::vector<int64_t>& rows) {
  const int64_t sourceLabels = source.size(0);
  std::vector<int64_t> kept, from;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0) continue;
    if (rows[i] >= sourceLabels)
      throw std::invalid_argument("tensor \"" + name + "\" has " + std::to_string(sourceLabels) + " label rows; row " +
                                  std::to_string(rows[i]) + " was asked for");
    kept.push_back(static_cast<int64_t>(i));
    from.push_back(rows[i]);
  }
  if (kept.empty()) return;
  const auto device = target.device();
  auto keptIndex = torch::tensor(kept, torch::kLong).to(device);
  auto fromIndex = torch::tensor(from, torch::kLong);
  auto picked = source.index_select(0, fromIndex);
  if (labelDims == 2) picked = picked.index_select(1, fromIndex);
  picked = picked.to(device, target.scalar_type());
  if (labelDims == 2) target.index_put_({keptIndex.unsqueeze(1), keptIndex.unsqueeze(0)}, picked);
  else target.index_copy_(0, keptIndex, picked);
}

WeightLoadReport loadNamedWeights(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& weights,
                                  const std::vector<std::string>& requiredPrefixes, const LabelRowMap& labelRows,
                                  bool skipMismatched) {
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
    int labelDims = 0;
    if (!labelRows.rows.empty())
      for (const auto& [tensorName, dims] : labelRows.tensors)
        if (tensorName == name) labelDims = dims;
    if (labelDims > 0) {
      if (static_cast<int64_t>(labelRows.rows.size()) != target.value().size(0))
        throw std::invalid_argument("label row map has " + std::to_string(labelRows.rows.size()) + " entries for " +
                                    std::to_string(target.value().size(0)) + " labels");
      auto value = target.value();
      used[name] = true;
      if (!fitsBeyondLabels(value, source, labelDims)) {
        if (!skipMismatched)
          throw std::invalid_argument("tensor \"" + name + "\" has shape " + shapeString(source.sizes()) + ", which does not fit the model's " +
                                      shapeString(value.sizes()) + " beyond the label dimension");
        report.mismatched.push_back(name + " " + shapeString(source.sizes()) + " vs " + shapeString(value.sizes()));
        report.initialised.push_back(name);
        continue;
      }
      copyLabelRows(value, source, name, labelDims, labelRows.rows);
      continue;
    }
    if (source.sizes() != target.value().sizes() && skipMismatched) {
      report.mismatched.push_back(name + " " + shapeString(source.sizes()) + " vs " + shapeString(target.value().sizes()));
      report.initialised.push_back(name);
      used[name] = true;
      continue;
    }
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
