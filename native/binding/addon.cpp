// The addon's entry point: registers the exports of the binding's files.
#include "napi_util.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ner::binding::InitTagger(env, exports);
  ner::binding::InitCrf(env, exports);
  exports.Set("libtorchVersion", Napi::String::New(env, TORCH_VERSION));
  exports.Set("cudaAvailable", Napi::Boolean::New(env, torch::cuda::is_available()));
  return exports;
}

}  // namespace

NODE_API_MODULE(ner_engine, Init)
