// The JS SdeBnn's native model, for other bindings (distributed.cc attaches its gradient hook).
#pragma once
#include <napi.h>

#include <memory>

#include "bnn/model.h"

namespace addon {

// The model behind a native SdeBnn object (not the TS wrapper). Throws a JS Error with code
// ERR_INVALID_ARGUMENT for other values, ERR_DISPOSED after dispose() and ERR_BUSY while a step
// runs (so the caller may change it).
std::shared_ptr<bnn::BnnModel> share_idle_bnn_model(Napi::Value value);

}  // namespace addon
