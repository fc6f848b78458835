// The process's CUDA speed modes, as PyTorch's torch.backends flags and torch.autocast: TF32 for
// float32 matmuls (cuBLAS) and convolutions (cuDNN), and bf16 autocast of every native job's CUDA
// ops. Turning one on needs a CUDA device (ERR_DEVICE_UNAVAILABLE without one, never a silent
// float32 run). LibTorch's defaults, as PyTorch's: TF32 convolutions on, TF32 matmuls off,
// autocast off. Also the CUDA caching allocator's memory figures.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>

namespace sde {

struct CudaMathMode {
  bool tf32_matmul;
  bool tf32_conv;
  bool autocast_bf16;
};

void set_cuda_math_mode(const CudaMathMode& mode);
CudaMathMode cuda_math_mode();
// Autocast is thread-local: every native job applies the mode on its own thread first (see
// apply_num_threads), with autocast's cast cache off so that no bf16 copy of a parameter outlives
// an optimizer update.
void apply_cuda_math_mode();

struct CudaMemoryStats {
  int64_t allocated_bytes;
  int64_t peak_allocated_bytes;
  int64_t reserved_bytes;
};
// The caching allocator's figures for a CUDA device; reset_peak starts a new peak from now.
// ERR_DEVICE_UNAVAILABLE on a LibTorch without CUDA.
CudaMemoryStats cuda_memory_stats(const c10::Device& device, bool reset_peak);

}  // namespace sde
