#include "sde/buffers.h"

#include <ATen/ATen.h>

namespace sde {

at::Tensor BufferPool::get(at::IntArrayRef shape, const at::TensorOptions& options) {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t bytes = 0;
  for (const at::Tensor& b : buffers_) {
    // Free when only the pool refers to it; nobody can take a reference while the lock is held.
    if (b.use_count() == 1 && b.storage().use_count() == 1 && b.sizes().equals(shape) && b.dtype() == options.dtype() &&
        b.device() == options.device()) {
      return b;
    }
    bytes += static_cast<int64_t>(b.nbytes());
  }
  at::Tensor b = at::empty(shape, options);
  const auto need = static_cast<int64_t>(b.nbytes());
  if (bytes + need > max_bytes_) {  // make room: drop the free buffers (of other sizes: none matched)
    for (auto it = buffers_.begin(); it != buffers_.end();) {
      if (it->use_count() == 1 && it->storage().use_count() == 1) {
        bytes -= static_cast<int64_t>(it->nbytes());
        it = buffers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (bytes + need <= max_bytes_) buffers_.push_back(b);
  return b;
}

}  // namespace sde
