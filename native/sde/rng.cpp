#include "sde/rng.h"

#include <cmath>
#include <cstring>

#include "sde/cpu_dispatch.h"

namespace sde::rng {

// Normals for elements [first, first + m) of the stream `key` (first even, m <= kBlock).
// Pair j of the block gives its cosine to out[j] and its sine to out[half + j], so the loops
// are straight and vectorise.
SDEBNN_CPU_CLONES_EXACT void normals_block(uint64_t key, int64_t first, float* out, int64_t m) {
  const int64_t half = (m + 1) / 2;
  const uint64_t pair0 = static_cast<uint64_t>(first / 2);
  alignas(64) uint32_t hi[kBlock / 2];
  alignas(64) uint32_t lo[kBlock / 2];
  alignas(64) float radius[kBlock / 2];
  for (int64_t j = 0; j < half; ++j) {
    const uint64_t z = mix64(key + (pair0 + static_cast<uint64_t>(j) + 1) * kGolden);
    hi[j] = static_cast<uint32_t>(z >> 32);
    lo[j] = static_cast<uint32_t>(z);
  }
  // Box-Muller with Cephes' logf and sinf/cosf polynomials, branch-free. (The double version below
  // has the same structure with Cephes' double polynomials, and vector_math.h's log_1_2 the same
  // logf core: this one stays apart, compiled without contraction, so that its bits are every CPU's.)
  for (int64_t j = 0; j < half; ++j) {
    const float u = static_cast<float>(static_cast<int32_t>(hi[j] >> 1)) * 0x1p-31f + 0x1p-32f;  // (0, 1]
    int32_t bits;
    std::memcpy(&bits, &u, 4);
    int32_t e = ((bits >> 23) & 0xff) - 126;
    const int32_t mbits = (bits & 0x007fffff) | 0x3f000000;
    float mant;
    std::memcpy(&mant, &mbits, 4);  // [0.5, 1)
    const int32_t below = mant < 0.707106781186547524f ? 1 : 0;
    e -= below;
    const float x = (mant - 1.0f) + static_cast<float>(below) * mant;
    const float z = x * x;
    float y = 7.0376836292e-2f;
    y = y * x - 1.1514610310e-1f;
    y = y * x + 1.1676998740e-1f;
    y = y * x - 1.2420140846e-1f;
    y = y * x + 1.4249322787e-1f;
    y = y * x - 1.6668057665e-1f;
    y = y * x + 2.0000714765e-1f;
    y = y * x - 2.4999993993e-1f;
    y = y * x + 3.3333331174e-1f;
    y = y * x * z;
    const float fe = static_cast<float>(e);
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    const float log_u = x + y + 0.693359375f * fe;
    radius[j] = -2.0f * log_u;
  }
  for (int64_t j = 0; j < half; ++j) radius[j] = std::sqrt(radius[j]);  // vectorises: -fno-math-errno
  for (int64_t j = 0; j < half; ++j) {
    // Angle 2*pi*v as a quarter turn k plus f in [-pi/4, pi/4].
    const float v = static_cast<float>(static_cast<int32_t>(lo[j] >> 8)) * 0x1p-22f;  // [0, 4)
    const int32_t k = static_cast<int32_t>(v + 0.5f);
    const float f = (v - static_cast<float>(k)) * 1.57079632679489662f;
    const float f2 = f * f;
    const float s0 = f + f * f2 * (-1.6666654611e-1f + f2 * (8.3321608736e-3f + f2 * -1.9515295891e-4f));
    const float c0 = 1.0f - 0.5f * f2 +
                     f2 * f2 * (4.166664568298827e-2f + f2 * (-1.388731625493765e-3f + f2 * 2.443315711809948e-5f));
    const bool swap = (k & 1) != 0;
    float sv = swap ? c0 : s0;
    float cv = swap ? s0 : c0;
    sv = (k & 2) ? -sv : sv;
    cv = ((k + 1) & 2) ? -cv : cv;
    const float r = radius[j];
    out[j] = r * cv;
    radius[j] = r * sv;
  }
  std::memcpy(out + half, radius, static_cast<size_t>(m - half) * sizeof(float));
}

namespace {
inline double bits_to_double(uint64_t b) {
  double d;
  std::memcpy(&d, &b, 8);
  return d;
}
}  // namespace

// Double precision, the same scheme with 52-bit uniforms and Cephes' double log and sin/cos
// (accurate to a few ulp); integer-to-double conversions use the 2^52 trick so AVX2 vectorises.
SDEBNN_CPU_CLONES_EXACT void normals_block(uint64_t key, int64_t first, double* out, int64_t m) {
  const int64_t half = (m + 1) / 2;
  const uint64_t c0 = static_cast<uint64_t>(first);
  constexpr uint64_t kTwo52 = 0x4330000000000000ULL;  // 2^52 as a double's bits
  alignas(64) uint64_t ua[kBlock / 2];
  alignas(64) uint64_t ub[kBlock / 2];
  alignas(64) double radius[kBlock / 2];
  for (int64_t j = 0; j < half; ++j) {
    ua[j] = mix64(key + (c0 + 2 * static_cast<uint64_t>(j) + 1) * kGolden);
    ub[j] = mix64(key + (c0 + 2 * static_cast<uint64_t>(j) + 2) * kGolden);
  }
  for (int64_t j = 0; j < half; ++j) {
    const double u = (bits_to_double(kTwo52 | (ua[j] >> 12)) - 0x1p52 + 0.5) * 0x1p-52;  // (0, 1)
    uint64_t bits;
    std::memcpy(&bits, &u, 8);
    double fe = bits_to_double(kTwo52 | (bits >> 52)) - 0x1p52 - 1022.0;
    const double mant = bits_to_double((bits & 0x000fffffffffffffULL) | 0x3fe0000000000000ULL);  // [0.5, 1)
    const double below = mant < 0.70710678118654752440 ? 1.0 : 0.0;
    fe -= below;
    const double x = (mant - 1.0) + below * mant;
    const double z = x * x;
    double p = 1.01875663804580931796e-4;
    p = p * x + 4.97494994976747001425e-1;
    p = p * x + 4.70579119878881725854e0;
    p = p * x + 1.44989225341610930846e1;
    p = p * x + 1.79368678507819816313e1;
    p = p * x + 7.70838733755885391666e0;
    double q = x + 1.12873587189167450590e1;
    q = q * x + 4.52279145837532221105e1;
    q = q * x + 8.29875266912776603211e1;
    q = q * x + 7.11544750618563894466e1;
    q = q * x + 2.31251620126765340583e1;
    double y = x * (z * p / q);
    y -= fe * 2.121944400546905827679e-4;
    y -= 0.5 * z;
    const double log_u = x + y + fe * 0.693359375;
    radius[j] = -2.0 * log_u;
  }
  for (int64_t j = 0; j < half; ++j) radius[j] = std::sqrt(radius[j]);  // vectorises: -fno-math-errno
  for (int64_t j = 0; j < half; ++j) {
    const double v = (bits_to_double(kTwo52 | (ub[j] >> 12)) - 0x1p52) * 0x1p-50;  // [0, 4)
    const int32_t ki = static_cast<int32_t>(v + 0.5);
    const double f = (v - static_cast<double>(ki)) * 1.57079632679489661923;
    const double f2 = f * f;
    double sp = 1.58962301576546568060e-10;
    sp = sp * f2 - 2.50507477628578072866e-8;
    sp = sp * f2 + 2.75573136213857245213e-6;
    sp = sp * f2 - 1.98412698295895385996e-4;
    sp = sp * f2 + 8.33333333332211858878e-3;
    sp = sp * f2 - 1.66666666666666307295e-1;
    const double s0 = f + f * f2 * sp;
    double cp = -1.13585365213876817300e-11;
    cp = cp * f2 + 2.08757008419747316778e-9;
    cp = cp * f2 - 2.75573141792967388112e-7;
    cp = cp * f2 + 2.48015872888517045348e-5;
    cp = cp * f2 - 1.38888888888730564116e-3;
    cp = cp * f2 + 4.16666666666665929218e-2;
    const double c0v = 1.0 - 0.5 * f2 + f2 * f2 * cp;
    // Quarter turn k in {0, .., 4}: bit 0 swaps sin and cos, bit 1 (of k, k + 1) negates them.
    const bool swap = (ki & 1) != 0;
    double sv = swap ? c0v : s0;
    double cv = swap ? s0 : c0v;
    sv = (ki & 2) ? -sv : sv;
    cv = ((ki + 1) & 2) ? -cv : cv;
    const double r = radius[j];
    out[j] = r * cv;
    radius[j] = r * sv;
  }
  std::memcpy(out + half, radius, static_cast<size_t>(m - half) * sizeof(double));
}

}  // namespace sde::rng
