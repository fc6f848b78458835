// Checks the engine's softplus kernel (native/sde/vector_math.h) against long-double
// log1p(exp(x)) and 1 / (1 + exp(-x)) over a wide range, compiled as the clones compile it
// (baseline ISA, AVX2+FMA), float and double, and with the 64-byte vectors of an AVX-512 clone
// (float). A case of the engine's C++ tests (engine_test.cpp, CTest); prints one JSON object and
// fails past float ~4e-7 / double ~1e-15 or on a wrong special value. Relative errors are floored at the smallest
// normal number of the type (below it, results are subnormal and an absolute error of a few subnormal steps is all one
// can ask).
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "sde/vector_math.h"

namespace {

namespace kbase {
void softplus(int64_t n, const float* z, float* out, float* s) { sde::simd::softplus(n, z, out, s); }
void softplus(int64_t n, const double* z, double* out, double* s) { sde::simd::softplus(n, z, out, s); }
}  // namespace kbase

#if defined(SDEBNN_HAS_CLONES)
#define HAVE_AVX2_CLONE 1
namespace kavx2 {
__attribute__((target("arch=x86-64-v3"))) void softplus(int64_t n, const float* z, float* out, float* s) {
  sde::simd::softplus(n, z, out, s);
}
__attribute__((target("arch=x86-64-v3"))) void softplus(int64_t n, const double* z, double* out, double* s) {
  sde::simd::softplus(n, z, out, s);
}
}  // namespace kavx2

__attribute__((target("arch=x86-64-v4"))) void softplus_avx512(int64_t n, const float* z, float* out, float* s) {
  sde::simd::softplus_lanes<sde::simd::Wide>(n, z, out, s);
}
#endif

long double ref_value(long double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
long double ref_slope(long double x) { return 1.0L / (1.0L + std::exp(-x)); }

template <typename T>
std::vector<T> inputs() {
  std::vector<T> x;
  const double lo = std::is_same<T, float>::value ? -110.0 : -750.0;
  const double hi = 110.0;
  const int n = 400000;
  for (int i = 0; i <= n; ++i) x.push_back(static_cast<T>(lo + (hi - lo) * i / n));
  // near 0, the threshold 20, the exp range ends, subnormal inputs
  for (double c : {0.0, 20.0, -20.0, 1.0, -1.0, -87.0, -88.7, -103.0, -104.0, -745.0, 88.0}) {
    T v = static_cast<T>(c);
    for (int k = 0; k < 64; ++k) {
      x.push_back(v);
      x.push_back(-v);
      v = std::nextafter(v, std::numeric_limits<T>::infinity());
    }
  }
  for (double e = -40; e <= 2; e += 0.01) {
    x.push_back(static_cast<T>(std::pow(10.0, e)));
    x.push_back(static_cast<T>(-std::pow(10.0, e)));
  }
  x.push_back(std::numeric_limits<T>::denorm_min());
  x.push_back(-std::numeric_limits<T>::denorm_min());
  x.push_back(std::numeric_limits<T>::max());
  x.push_back(std::numeric_limits<T>::lowest());
  x.push_back(static_cast<T>(0.0) * -1);
  x.push_back(static_cast<T>(3.7));  // an odd count: the scalar tail runs too
  return x;
}

struct Errors {
  double value = 0, slope = 0;
  bool exact_above_20 = true, specials = true;
};

template <typename T, typename Fn>
Errors check(Fn softplus) {
  Errors e;
  const std::vector<T> x = inputs<T>();
  std::vector<T> out(x.size()), s(x.size()), out2(x.size());
  softplus(static_cast<int64_t>(x.size()), x.data(), out.data(), s.data());
  softplus(static_cast<int64_t>(x.size()), x.data(), out2.data(), static_cast<T*>(nullptr));
  const long double floor = std::numeric_limits<T>::min();
  for (size_t i = 0; i < x.size(); ++i) {
    const long double rv = ref_value(x[i]), rs = ref_slope(x[i]);
    e.value = std::max(e.value, static_cast<double>(std::fabs(out[i] - rv) / std::max(std::fabs(rv), floor)));
    e.slope = std::max(e.slope, static_cast<double>(std::fabs(s[i] - rs) / std::max(std::fabs(rs), floor)));
    if (x[i] > 20 && out[i] != x[i]) e.exact_above_20 = false;
    if (out2[i] != out[i]) e.specials = false;  // the value does not depend on asking for the slope
  }
  // NaN stays NaN; +inf -> inf (slope 1); -inf -> 0 (slope 0); in a full vector and in the tail
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  std::vector<T> sp{nan, inf, -inf, 1, 2, 3, 4, 5, nan, inf, -inf};
  std::vector<T> so(sp.size()), ss(sp.size());
  softplus(static_cast<int64_t>(sp.size()), sp.data(), so.data(), ss.data());
  for (size_t base : {size_t(0), size_t(8)}) {
    if (!std::isnan(so[base]) || !std::isnan(ss[base])) e.specials = false;
    if (so[base + 1] != inf || ss[base + 1] != 1) e.specials = false;
    if (so[base + 2] != 0 || ss[base + 2] != 0) e.specials = false;
  }
  return e;
}

void print(const char* name, const Errors& e, bool last) {
  std::printf("\"%s\":{\"value\":%.3e,\"slope\":%.3e,\"exactAbove20\":%s,\"specials\":%s}%s", name, e.value, e.slope,
              e.exact_above_20 ? "true" : "false", e.specials ? "true" : "false", last ? "" : ",");
}

}  // namespace

// The case: 0 when every build passes.
int softplus_check() {
  using F = void (*)(int64_t, const float*, float*, float*);
  using D = void (*)(int64_t, const double*, double*, double*);
  bool ok = true;
  const auto run = [&](const char* name, const Errors& e, bool is_float, bool last) {
    print(name, e, last);
    const double tol = is_float ? 4e-7 : 1e-15;
    ok = ok && e.value < tol && e.slope < tol && e.exact_above_20 && e.specials;
  };
  std::printf("{");
  run("floatBase", check<float>(static_cast<F>(&kbase::softplus)), true, false);
  run("doubleBase", check<double>(static_cast<D>(&kbase::softplus)), false, false);
#ifdef HAVE_AVX2_CLONE
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) {
    run("floatAvx2", check<float>(static_cast<F>(&kavx2::softplus)), true, false);
    run("doubleAvx2", check<double>(static_cast<D>(&kavx2::softplus)), false, false);
  }
  // conv_kernels.cpp's 64-byte vectors, in its AVX-512 clone
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
  if (avx512) run("floatAvx512", check<float>(static_cast<F>(&softplus_avx512)), true, false);
  std::printf("\"avx2\":%s,\"avx512\":%s}\n", avx2 ? "true" : "false", avx512 ? "true" : "false");
#else
  std::printf("\"avx2\":false,\"avx512\":false}\n");
#endif
  return ok ? 0 : 1;
}
