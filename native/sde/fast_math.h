// Elementwise math that LibTorch's CPU build does slowly for the solver's small tensors.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace sde {

// tanh(x) into out (which may be x). float32 on CPU uses a rational approximation (Eigen's
// coefficients; within 2.5e-7 of std::tanh, see test/fast-math) vectorised for AVX-512, AVX2 or
// the baseline ISA, picked at load time; float64 and other devices use ATen's exact tanh.
void tanh_into(const at::Tensor& x, at::Tensor& out);

// The float kernel itself (exposed for the accuracy test).
void fast_tanh(const float* x, float* out, int64_t n);

}  // namespace sde
