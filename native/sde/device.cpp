#include "sde/device.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/version.h>

#include <atomic>
#include <cstdlib>
#include <regex>
#include <thread>

#include "sde/errors.h"

namespace sde {

namespace {
int cuda_device_count() { return at::hasCUDA() ? static_cast<int>(at::getNumGPUs()) : 0; }
}  // namespace

c10::Device resolve_device(const std::string& spec) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "auto") {
    return cuda_device_count() > 0 ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  static const std::regex cuda_re("^cuda(?::([0-9]+))?$");
  std::smatch m;
  if (!std::regex_match(spec, m, cuda_re)) {
    throw invalid_argument("Expected 'cpu', 'cuda', 'cuda:N' or 'auto' for device but received '" + spec + "'");
  }
  const int index = m[1].matched ? std::stoi(m[1].str()) : 0;
  const int count = cuda_device_count();
  if (count == 0) {
    throw EngineError("ERR_DEVICE_UNAVAILABLE", "device '" + spec + "' requested but this LibTorch (" + TORCH_VERSION +
                                                    ") has no CUDA device available; build against a CUDA LibTorch "
                                                    "(LIBTORCH=/path/to/libtorch) or use device 'cpu'");
  }
  if (index >= count) {
    throw EngineError("ERR_DEVICE_UNAVAILABLE",
                      "device '" + spec + "' requested but only " + std::to_string(count) + " CUDA device(s) exist");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

BackendInfo backend_info() {
  return BackendInfo{TORCH_VERSION, cuda_device_count() > 0, cuda_device_count(), at::get_num_threads(),
                     at::get_num_interop_threads()};
}

int default_num_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

namespace {
std::atomic<int> chosen_num_threads{0};
}  // namespace

void set_num_threads(int n) {
  const int threads = n > 0 ? n : default_num_threads();
  chosen_num_threads.store(threads);
  at::set_num_threads(threads);
}

void apply_num_threads() {
  const int threads = chosen_num_threads.load();
  if (threads > 0 && at::get_num_threads() != threads) at::set_num_threads(threads);
}

}  // namespace sde
