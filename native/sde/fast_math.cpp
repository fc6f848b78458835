#include "sde/fast_math.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

namespace sde {

namespace {
// tanh(x) = x P(x^2) / Q(x^2) on [-c, c] and +-1 (to float precision) beyond: Eigen's
// generic_fast_tanh_float. Plain arithmetic; GCC vectorises it in the AVX-512 clone (masked), while
// the clamp keeps the AVX2 and baseline clones scalar (it did with std::min/max too). The clamp's
// comparisons are false for NaN, so NaN passes through as LibTorch's tanh passes it (std::min/max
// turned it into -c, and so into a finite -1).
SDEBNN_CPU_CLONES void fast_tanh_kernel(const float* __restrict x, float* __restrict out, int64_t n) {
  constexpr float c = 7.90531110763549805f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] > c ? c : x[i] < -c ? -c : x[i];
    const float v2 = v * v;
    float p = -2.76076847742355e-16f;
    p = p * v2 + 2.00018790482477e-13f;
    p = p * v2 - 8.60467152213735e-11f;
    p = p * v2 + 5.12229709037114e-08f;
    p = p * v2 + 1.48572235717979e-05f;
    p = p * v2 + 6.37261928875436e-04f;
    p = p * v2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * v2 + 1.18534705686654e-04f;
    q = q * v2 + 2.26843463243900e-03f;
    q = q * v2 + 4.89352518554385e-03f;
    out[i] = v * p / q;
  }
}

void fast_tanh(const float* x, float* out, int64_t n) {
  // In place (x == out) goes through a small buffer: the kernel's pointers are restrict.
  if (x == out) {
    constexpr int64_t kChunk = 1024;
    alignas(64) float tmp[kChunk];
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t len = std::min(kChunk, n - i);
      fast_tanh_kernel(x + i, tmp, len);
      std::copy(tmp, tmp + len, out + i);
    }
    return;
  }
  fast_tanh_kernel(x, out, n);
}

}  // namespace

void tanh_into(const at::Tensor& x, at::Tensor& out) {
  if (x.is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous() && out.is_contiguous() &&
      out.scalar_type() == at::kFloat && out.sizes().equals(x.sizes())) {
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    // ATen's grain for elementwise work: small tensors stay on the calling thread.
    at::parallel_for(0, x.numel(), at::internal::GRAIN_SIZE,
                     [&](int64_t begin, int64_t end) { fast_tanh(in + begin, o + begin, end - begin); });
    return;
  }
  at::tanh_out(out, x);
}

}  // namespace sde
