#include <napi.h>

#include "registry.h"
#include "sde/device.h"

namespace {
Napi::Object init(Napi::Env env, Napi::Object exports) {
  // Debian's LibTorch starts with one intra-op thread; use the hardware's unless
  // OMP_NUM_THREADS says otherwise.
  sde::set_num_threads(0);
  addon::register_core(env, exports);
  addon::register_brownian(env, exports);
  addon::register_sdeint(env, exports);
  addon::register_bnn(env, exports);
  addon::register_distributed(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(sdebnn, init)
