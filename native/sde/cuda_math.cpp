#include "sde/cuda_math.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <atomic>

#include "sde/errors.h"

#if SDEBNN_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace sde {

namespace {
std::atomic<bool> autocast_bf16{false};

void require_cuda(const char* what) {
  if (!at::hasCUDA()) {
    throw EngineError("ERR_DEVICE_UNAVAILABLE", std::string(what) + " applies to CUDA but this LibTorch (" +
                                                    TORCH_VERSION + ") has no CUDA device available");
  }
}

void set_thread_autocast(bool enabled) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  if (enabled) at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
  at::autocast::set_enabled(enabled);
  if (enabled) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
  at::autocast::set_autocast_cache_enabled(!enabled);
}
}  // namespace

void set_cuda_math_mode(const CudaMathMode& mode) {
  const CudaMathMode now = cuda_math_mode();
  if (mode.tf32_matmul && !now.tf32_matmul) require_cuda("TF32 matmuls");
  if (mode.tf32_conv && !now.tf32_conv) require_cuda("TF32 convolutions");
  if (mode.autocast_bf16) require_cuda("bf16 autocast");
  at::globalContext().setAllowTF32CuBLAS(mode.tf32_matmul);
  at::globalContext().setAllowTF32CuDNN(mode.tf32_conv);
  autocast_bf16.store(mode.autocast_bf16);
}

CudaMathMode cuda_math_mode() {
  return CudaMathMode{at::globalContext().allowTF32CuBLAS(), at::globalContext().allowTF32CuDNN(),
                      autocast_bf16.load()};
}

void apply_cuda_math_mode() {
  const bool wanted = autocast_bf16.load();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const bool current = at::autocast::is_autocast_enabled(at::kCUDA);
#else
  const bool current = at::autocast::is_enabled();
#endif
  if (current != wanted) set_thread_autocast(wanted);
}

CudaMemoryStats cuda_memory_stats(const c10::Device& device, bool reset_peak) {
  if (!device.is_cuda())
    throw invalid_argument("Expected a CUDA device for the CUDA memory figures but received '" + device.str() + "'");
#if SDEBNN_HAVE_CUDA
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const int index = device.has_index() ? device.index() : 0;
  const auto stats = alloc::getDeviceStats(index);
  // Index 0 of each stat array is the aggregate over small and large pools (StatType::AGGREGATE).
  CudaMemoryStats out{stats.allocated_bytes[0].current, stats.allocated_bytes[0].peak, stats.reserved_bytes[0].current};
  if (reset_peak) alloc::resetPeakStats(index);
  return out;
#else
  (void)reset_peak;
  throw EngineError(
      "ERR_DEVICE_UNAVAILABLE",
      std::string("CUDA memory figures need a CUDA build of sdebnn; this LibTorch (") + TORCH_VERSION + ") has none");
#endif
}

}  // namespace sde
