// Trainer resume state <-> JS values (see trainer_state.cpp).
#pragma once
#include "napi_util.h"

namespace ner::binding {

Napi::Object trainerStateToJs(Napi::Env env, Trainer& trainer, const EncodedDataset& data);
void loadTrainerStateFromJs(const Napi::CallbackInfo& info, Trainer& trainer, const EncodedDataset& data);

}  // namespace ner::binding
