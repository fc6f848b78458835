// The JS BrownianInterval, for other bindings (the solvers) that take one as an argument.
#pragma once
#include <napi.h>

#include <memory>

#include "sde/brownian.h"

namespace addon {

// The Brownian motion behind a JS BrownianInterval object (the native object, not the TS
// wrapper). Throws a JS Error with code ERR_INVALID_ARGUMENT for other values and ERR_DISPOSED
// after dispose(). The pointer is valid while the JS object is alive and not disposed.
sde::BrownianMotion* unwrap_brownian(Napi::Value value);

// The same as shared ownership, for async work that must outlive a dispose() on the JS thread.
// The source locks itself per query, so concurrent queries are safe (though they serialise).
std::shared_ptr<sde::BrownianMotion> share_brownian(Napi::Value value);

}  // namespace addon
