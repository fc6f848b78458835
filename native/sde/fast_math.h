// Elementwise math that LibTorch's CPU build does slowly for the solver's small tensors.
#pragma once
#include <ATen/core/Tensor.h>

// Vector variants of a hot loop for AVX-512 and AVX2, picked at load time for the CPU (GCC on
// x86-64 Linux; a plain function elsewhere).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SDEBNN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SDEBNN_CPU_CLONES
#endif

namespace sde {

// tanh(x) into out (which may be x). float32 on CPU uses a rational approximation (Eigen's
// coefficients; within 2.4e-7 of tanh, tested in test/core.test.ts through the addon's
// elementwise() hook) vectorised for AVX-512, AVX2 or the baseline ISA, picked at load time;
// float64 and other devices use ATen's exact tanh.
void tanh_into(const at::Tensor& x, at::Tensor& out);

}  // namespace sde
