// The engine's one buffer-pool mechanism. A solve that repeats the sizes of the last one (every
// training step, every image of a batch) takes its buffers from a pool instead of allocating,
// page-faulting and zeroing them again.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>
#include <limits>
#include <mutex>
#include <vector>

namespace sde {

class BufferPool {
 public:
  // At most max_bytes are kept: past it, free buffers of other sizes are dropped, and a buffer that
  // still does not fit is handed out but not kept.
  explicit BufferPool(int64_t max_bytes = std::numeric_limits<int64_t>::max()) : max_bytes_(max_bytes) {}

  // An uninitialised tensor of this shape, dtype and device: a kept one that nothing but the pool
  // refers to any more (no tensor, no view of it), else a new one. The caller holds the returned
  // tensor for as long as it uses the memory (a raw pointer alone does not keep it taken).
  // Thread-safe.
  at::Tensor get(at::IntArrayRef shape, const at::TensorOptions& options);

 private:
  std::mutex mutex_;
  std::vector<at::Tensor> buffers_;
  int64_t max_bytes_;
};

}  // namespace sde
