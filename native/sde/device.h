// Device selection: 'cpu' | 'cuda' | 'cuda:N' | 'auto'. Asking for CUDA where LibTorch has
// none is an error, never a silent CPU run.
#pragma once
#include <c10/core/Device.h>
#include <string>

namespace sde {

c10::Device resolve_device(const std::string& spec);

struct BackendInfo {
  std::string torch_version;
  bool cuda_available;
  int cuda_device_count;
  int num_threads;
  int num_interop_threads;
};

BackendInfo backend_info();

// Sets LibTorch's intra-op thread count; n <= 0 means "the hardware's, unless
// OMP_NUM_THREADS says otherwise" (Debian's LibTorch starts with one thread).
void set_num_threads(int n);
int default_num_threads();
// Makes the calling thread use the count set_num_threads chose: OpenMP's thread count is per
// thread, so a worker thread that ran before a change would keep the old one. Every native job
// calls it first.
void apply_num_threads();

}  // namespace sde
