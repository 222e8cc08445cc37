// Tensors that arrive from JavaScript (views over host memory) and named-weight transfer in and out
// of a module. Nothing here knows N-API: the binding hands over raw pointers.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace ner {

// safetensors dtype names ("F32", "BF16", ...) to LibTorch's. Throws for names LibTorch cannot hold.
torch::ScalarType scalarTypeFromName(const std::string& name);

// A view over host memory the caller keeps alive (no copy).
torch::Tensor hostTensorView(void* data, torch::ScalarType dtype, const std::vector<int64_t>& shape);

struct WeightLoadReport {
  std::vector<std::string> initialised;  // parameters the checkpoint did not have (kept at their init)
  std::vector<std::string> unused;       // checkpoint tensors the model does not use
  std::vector<std::string> mismatched;   // shape mismatches skipped (skipMismatched), kept at their init
};

// Label mapping by name for the label-indexed tensors (classifier rows, CRF scores): target label i
// takes the checkpoint's row rows[i], or keeps its initialisation where rows[i] is -1. `tensors` names
// each such tensor with how many of its leading dimensions are label-indexed (2 for transitions).
struct LabelRowMap {
  std::vector<int64_t> rows;
  std::vector<std::pair<std::string, int>> tensors;
};

// Copies named tensors into the module's parameters and buffers, converting dtype and device.
// Every name starting with one of `requiredPrefixes` must be present; a shape mismatch always throws,
// naming the tensor and both shapes, unless skipMismatched (HF's ignore_mismatched_sizes): then the
// tensor keeps its initialisation and is reported. With a non-empty labelRows, its tensors are copied
// row by row.
WeightLoadReport loadNamedWeights(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& weights,
                                  const std::vector<std::string>& requiredPrefixes, const LabelRowMap& labelRows = {},
                                  bool skipMismatched = false);

// All parameters and buffers as contiguous fp32 CPU tensors, by name.
std::vector<std::pair<std::string, torch::Tensor>> exportNamedWeights(torch::nn::Module& module);

}  // namespace ner
