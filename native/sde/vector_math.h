// Vectorised elementwise maths for the hand-written CPU loops, as always_inline templates so that
// every clone that calls them (cpu_dispatch.h) compiles them for its own ISA: exp on (-inf, 0],
// log on [1, 2], and softplus with its slope in one pass. activations.cpp and the conv kernels
// call them; test/native checks them against long-double references.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "sde/activations.h"
#include "sde/cpu_dispatch.h"

namespace sde::simd {

// The int32 vector as wide as the float vector V.
template <typename V>
struct IntVec {
  typedef int32_t type __attribute__((vector_size(sizeof(V))));
};

// exp(a) for a <= 0 (a NaN stays NaN; a < -104 flushes to ~0), on float vectors of any width:
// Cephes' expf (range reduction by ln 2 in two parts, a degree-5 polynomial, ~1 ulp) with the
// power of two applied in two halves so that results down to the subnormals stay right.
template <typename V>
SDEBNN_INLINE V exp_nonpositive(V a) {
  typedef typename IntVec<V>::type VI;
  a = a < -104.0f ? V{} - 104.0f : a;
  const V magic = V{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const V nf = (a * 1.44269504088896341f + magic) - magic;
  V r = a - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  const V z = r * r;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  const VI n = __builtin_convertvector(nf, VI);
  const VI n1 = n >> 1, n2 = n - n1;  // each >= -75: a normal power of two
  const VI b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  V s1, s2;
  __builtin_memcpy(&s1, &b1, sizeof(V));
  __builtin_memcpy(&s2, &b2, sizeof(V));
  return p * s1 * s2;
}

// log(v) for v in [1, 2] (Cephes' logf: one halving above sqrt 2, a degree-8 polynomial in v - 1).
template <typename V>
SDEBNN_INLINE V log_1_2(V v) {
  const auto big = v > 1.41421356237f;
  const V m = big ? v * 0.5f : v;
  const V e = big ? V{} + 1.0f : V{};
  const V x = m - 1.0f;  // exact
  const V z = x * x;
  V p = V{} + 7.0376836292e-2f;
  p = p * x - 1.1514610310e-1f;
  p = p * x + 1.1676998740e-1f;
  p = p * x - 1.2420140846e-1f;
  p = p * x + 1.4249322787e-1f;
  p = p * x - 1.6668057665e-1f;
  p = p * x + 2.0000714765e-1f;
  p = p * x - 2.4999993993e-1f;
  p = p * x + 3.3333331174e-1f;
  V y = p * x * z;
  y = y + e * -2.12194440e-4f;
  y = y - 0.5f * z;
  return (x + y) + e * 0.693359375f;
}

// Softplus as ATen computes it (beta 1, threshold 20: z > 20 gives z, else log1p(exp(z))) and its
// slope sigmoid(z), from the stable split softplus(z) = max(z, 0) + log1p(u), u = exp(-|z|) in
// (0, 1]: one exp for both, sigmoid(z) = (z >= 0 ? 1 : u) / (1 + u). NaN stays NaN. Float: ~1e-7
// relative (a few ulps); double: the formula with the C library's exp and log1p.
template <typename V>
SDEBNN_INLINE void softplus_vector(V x, V& value, V& slope) {
  const V a = x > 0.0f ? -x : x;   // -|x| (NaN stays NaN)
  const V u = exp_nonpositive(a);  // (0, 1]
  const V v = 1.0f + u;            // [1, 2], rounded
  const V c = u - (v - 1.0f);      // its rounding error, exactly
  const V rv = 1.0f / v;
  const V lp = log_1_2(v) + c * rv;  // log1p(u) = log(v) + c / v + O(c^2)
  const V pos = x > 0.0f ? x : V{};
  value = x > 20.0f ? x : pos + lp;
  slope = (x >= 0.0f ? V{} + 1.0f : u) * rv;
}

SDEBNN_INLINE void softplus_scalar(double z, double& out, double* s) {
  const double u = std::exp(-std::fabs(z));
  out = z > 20.0 ? z : (z > 0 ? z : 0.0) + std::log1p(u);
  if (s) *s = (z >= 0 ? 1.0 : u) / (1.0 + u);
}

// out[0, n) = softplus(z), and s = its slope where s is not null, on float vectors V of any width;
// the tail runs as one zero-padded vector.
template <typename V>
SDEBNN_INLINE void softplus_lanes(int64_t n, const float* z, float* out, float* s) {
  constexpr int L = sizeof(V) / sizeof(float);
  int64_t i = 0;
  V x, value, slope;
  for (; i + L <= n; i += L) {
    __builtin_memcpy(&x, z + i, sizeof(V));
    softplus_vector(x, value, slope);
    __builtin_memcpy(out + i, &value, sizeof(V));
    if (s) __builtin_memcpy(s + i, &slope, sizeof(V));
  }
  if (i == n) return;
  x = V{};
  for (int64_t j = i; j < n; ++j) x[j - i] = z[j];
  softplus_vector(x, value, slope);
  for (int64_t j = i; j < n; ++j) {
    out[j] = value[j - i];
    if (s) s[j] = slope[j - i];
  }
}

SDEBNN_INLINE void softplus(int64_t n, const float* z, float* out, float* s) {
  softplus_lanes<Vec<float>::type>(n, z, out, s);
}

SDEBNN_INLINE void softplus(int64_t n, const double* z, double* out, double* s) {
  for (int64_t i = 0; i < n; ++i) softplus_scalar(z[i], out[i], s ? s + i : nullptr);
}

// act'(z) from a = act(z) alone, for vectors V of T or scalars (V = T): tanh 1 - a^2, sigmoid
// a (1 - a), relu [not a <= 0], identity 1, softplus sigmoid(z) = 1 - exp(-a) (float vectors: the
// vectorised exp, an absolute error of an ulp of 1; otherwise -expm1(-a)).
template <typename T, typename V>
SDEBNN_INLINE V slope_from_output(Activation act, V a) {
  switch (act) {
    case Activation::Tanh: return T(1) - a * a;
    case Activation::Sigmoid: return a * (T(1) - a);
    case Activation::Relu: return a <= T(0) ? V{} : V{} + T(1);  // NaN: 1, as threshold_backward
    case Activation::Identity: return V{} + T(1);
    case Activation::Softplus: break;
  }
  if constexpr (std::is_same_v<V, T>) {
    return -std::expm1(-a);
  } else if constexpr (std::is_same_v<T, float>) {
    return T(1) - exp_nonpositive(-a);  // a >= 0: the argument is in exp_nonpositive's range
  } else {
    V s;
    for (size_t l = 0; l < sizeof(V) / sizeof(T); ++l) s[l] = -std::expm1(-a[l]);
    return s;
  }
}

// tanh(x) = x P(x^2) / Q(x^2) on [-c, c] and +-1 (to float precision) beyond: Eigen's
// generic_fast_tanh_float, within 2.4e-7 of tanh; NaN stays NaN. Plain arithmetic, so that loops
// over it vectorise.
SDEBNN_INLINE float tanh_rational(float x) {
  constexpr float c = 7.90531110763549805f;
  const float v = x > c ? c : x < -c ? -c : x;
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
  return v * p / q;
}

}  // namespace sde::simd
