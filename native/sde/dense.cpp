#include "sde/dense.h"

#include "sde/cpu_dispatch.h"

namespace sde::dense {

namespace {

using simd::Vec;
using simd::vload;
using simd::vstore;

template <typename T>
SDEBNN_INLINE void axpy_impl(int64_t n, T a, const T* __restrict x, T* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Lane-wise partial sums (16 lanes): vectorises without reassociating one scalar chain; a fixed order.
template <typename T>
SDEBNN_INLINE T dot_impl(int64_t n, const T* __restrict x, const T* __restrict y) {
  constexpr int kLanes = 16;
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j] * y[i + j];
  }
  T s = 0;
  for (; i < n; ++i) s += x[i] * y[i];
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// y[out] = (b +) W x, W [out, in]: one dot per row (in large). Four rows at a time share the loads
// of x and give the FMA unit 4x the independent chains; each row's sum is dot()'s, lane for lane.
template <typename T>
SDEBNN_INLINE void gemv_rows(int64_t out, int64_t in, const T* W, const T* x, const T* b, T* y) {
  typedef typename Vec<T>::type V;
  constexpr int L = Vec<T>::kLanes, NV = 16 / L, R = 4;
  int64_t o = 0;
  for (; o + R <= out; o += R) {
    V acc[R][NV] = {};
    int64_t i = 0;
    for (; i + 16 <= in; i += 16) {
      V xv[NV];
      for (int v = 0; v < NV; ++v) xv[v] = vload(x + i + v * L);
      for (int r = 0; r < R; ++r) {
        for (int v = 0; v < NV; ++v) acc[r][v] += vload(W + (o + r) * in + i + v * L) * xv[v];
      }
    }
    for (int r = 0; r < R; ++r) {
      const T* wr = W + (o + r) * in;
      T s = 0;
      for (int64_t k = i; k < in; ++k) s += wr[k] * x[k];
      for (int v = 0; v < NV; ++v) {
        for (int l = 0; l < L; ++l) s += acc[r][v][l];
      }
      y[o + r] = (b ? b[o + r] : T(0)) + s;
    }
  }
  for (; o < out; ++o) y[o] = (b ? b[o] : T(0)) + dot_impl(in, W + o * in, x);
}

// y[out] = (b +) W x for short rows (W [out, in], in small, out large: W1's 1283 x 64 second
// hypernetwork layer). gemv_rows sums each row's lanes one scalar at a time, which costs as much as
// the products when a row is only a few vectors long; here 8 rows run at once and their 8 lane
// vectors reduce together by in-lane shuffles (4 + 2 pairings, then the two halves): 7 adds for
// 8 rows. Double takes gemv_rows.
template <typename V>
SDEBNN_INLINE V pair_sums(V a, V b) {  // [a01 a23 b01 b23 | a45 a67 b45 b67]
  typedef int32_t M __attribute__((vector_size(32)));
  return __builtin_shuffle(a, b, M{0, 2, 8, 10, 4, 6, 12, 14}) + __builtin_shuffle(a, b, M{1, 3, 9, 11, 5, 7, 13, 15});
}

SDEBNN_INLINE void gemv_short(int64_t out, int64_t in, const float* W, const float* x, const float* b, float* y) {
  typedef Vec<float>::type V;
  typedef int32_t M __attribute__((vector_size(32)));
  constexpr int L = Vec<float>::kLanes, R = 8;
  const int64_t in_v = in - in % L;
  int64_t o = 0;
  for (; o + R <= out; o += R) {
    V acc[R] = {};
    for (int64_t i = 0; i < in_v; i += L) {
      const V xv = vload(x + i);
      for (int r = 0; r < R; ++r) acc[r] += vload(W + (o + r) * in + i) * xv;
    }
    const V p = pair_sums(acc[0], acc[1]), q = pair_sums(acc[2], acc[3]);
    const V u = pair_sums(acc[4], acc[5]), v = pair_sums(acc[6], acc[7]);
    const V pq = pair_sums(p, q), uv = pair_sums(u, v);  // rows 0-3 (4-7): low-half sums | high-half sums
    V sum = __builtin_shuffle(pq, uv, M{0, 1, 2, 3, 8, 9, 10, 11}) +
            __builtin_shuffle(pq, uv, M{4, 5, 6, 7, 12, 13, 14, 15});
    if (b) sum += vload(b + o);
    if (in_v < in) {
      for (int r = 0; r < R; ++r) {
        float t = 0;
        for (int64_t i = in_v; i < in; ++i) t += W[(o + r) * in + i] * x[i];
        sum[r] += t;
      }
    }
    vstore(y + o, sum);
  }
  for (; o < out; ++o) y[o] = (b ? b[o] : 0.0f) + dot_impl(in, W + o * in, x);
}

SDEBNN_INLINE void gemv_short(int64_t out, int64_t in, const double* W, const double* x, const double* b, double* y) {
  gemv_rows<double>(out, in, W, x, b, y);
}

// One R x (NV vectors) tile of gemm_acc below, its accumulators in registers for the whole k loop.
template <typename T, int R, int NV>
SDEBNN_INLINE void gemm_tile(int64_t K, const T* A, int64_t sar, int64_t sak, const T* M, int64_t ldm, const T* z0,
                             const T* z1, T t, T* Z, int64_t ldz) {
  typedef typename Vec<T>::type V;
  constexpr int L = Vec<T>::kLanes;
  V acc[R][NV];
  for (int v = 0; v < NV; ++v) {
    V init = {};
    if (z0) init = z1 ? vload(z0 + v * L) + t * vload(z1 + v * L) : vload(z0 + v * L);
    for (int r = 0; r < R; ++r) acc[r][v] = init;
  }
  for (int64_t k = 0; k < K; ++k) {
    V m[NV];
    for (int v = 0; v < NV; ++v) m[v] = vload(M + k * ldm + v * L);
    for (int r = 0; r < R; ++r) {
      const T a = A[r * sar + k * sak];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * m[v];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) vstore(Z + r * ldz + v * L, acc[r][v]);
  }
}

// The leftover columns (fewer than a tile): one register sum per element over k, same order. (Not
// axpy-style z[c] += ...: that chains a load, FMA and store through memory for every k.)
template <typename T>
SDEBNN_INLINE void gemm_cols(int64_t rows, int64_t cols, int64_t K, const T* A, int64_t sar, int64_t sak, const T* M,
                             int64_t ldm, const T* z0, const T* z1, T t, T* Z, int64_t ldz) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      T acc = z0 ? (z1 ? z0[c] + t * z1[c] : z0[c]) : T(0);
      for (int64_t k = 0; k < K; ++k) acc += A[r * sar + k * sak] * M[k * ldm + c];
      Z[r * ldz + c] = acc;
    }
  }
}

// Z [m, n] (row stride ldz) = init + sum_k A(r, k) M[k, :], with A(r, k) = A[r sar + k sak] (a
// matrix or a transposed one), M [K, n] of row stride ldm, init = z0 (+ t z1) per column or 0.
// Every element's k sum runs in order, as the axpy loops this replaces did; what changes is that
// a tile of rows x columns keeps its sums in registers across the k loop (each M row loaded once
// per 4 rows; Z written once) instead of loading and storing Z for every k.
template <typename T>
SDEBNN_INLINE void gemm_acc(int64_t m, int64_t n, int64_t K, const T* A, int64_t sar, int64_t sak, const T* M,
                            int64_t ldm, const T* z0, const T* z1, T t, T* Z, int64_t ldz) {
  constexpr int L = Vec<T>::kLanes;
  constexpr int R = 4, NV = 2, C = NV * L;  // 4 rows x 2 vectors: 8 accumulators
  constexpr int NV1 = 8, C1 = NV1 * L;      // a single row: 8 vectors wide
  // the AVX-512 clone's 32 registers hold 4 rows x 4 vectors (16 accumulators): fewer loads per product
  const bool wide = simd::wide_vectors();
  int64_t r = 0;
  for (; r + R <= m; r += R) {
    int64_t c = 0;
    for (; wide && c + 2 * C <= n; c += 2 * C) {
      gemm_tile<T, R, 2 * NV>(K, A + r * sar, sar, sak, M + c, ldm, z0 ? z0 + c : nullptr, z1 ? z1 + c : nullptr, t,
                              Z + r * ldz + c, ldz);
    }
    for (; c + C <= n; c += C) {
      gemm_tile<T, R, NV>(K, A + r * sar, sar, sak, M + c, ldm, z0 ? z0 + c : nullptr, z1 ? z1 + c : nullptr, t,
                          Z + r * ldz + c, ldz);
    }
    if (c < n)
      gemm_cols(R, n - c, K, A + r * sar, sar, sak, M + c, ldm, z0 ? z0 + c : nullptr, z1 ? z1 + c : nullptr, t,
                Z + r * ldz + c, ldz);
  }
  for (; r < m; ++r) {
    int64_t c = 0;
    for (; c + C1 <= n; c += C1) {
      gemm_tile<T, 1, NV1>(K, A + r * sar, sar, sak, M + c, ldm, z0 ? z0 + c : nullptr, z1 ? z1 + c : nullptr, t,
                           Z + r * ldz + c, ldz);
    }
    for (; c + L <= n; c += L) {
      gemm_tile<T, 1, 1>(K, A + r * sar, sar, sak, M + c, ldm, z0 ? z0 + c : nullptr, z1 ? z1 + c : nullptr, t,
                         Z + r * ldz + c, ldz);
    }
    if (c < n)
      gemm_cols(1, n - c, K, A + r * sar, sar, sak, M + c, ldm, z0 ? z0 + c : nullptr, z1 ? z1 + c : nullptr, t,
                Z + r * ldz + c, ldz);
  }
}

// y = W x by the tile that suits the rows: gemv_short when rows are shorter than the output.
template <typename T>
SDEBNN_INLINE void gemv_impl(int64_t out, int64_t in, const T* W, const T* x, const T* b, T* y) {
  if (in < out) {
    gemv_short(out, in, W, x, b, y);
  } else {
    gemv_rows<T>(out, in, W, x, b, y);
  }
}

}  // namespace

#define SDEBNN_DENSE(T)                                                                                          \
  SDEBNN_CPU_CLONES T dot(int64_t n, const T* x, const T* y) { return dot_impl(n, x, y); }                       \
  SDEBNN_CPU_CLONES void axpy(int64_t n, T a, const T* x, T* y) { axpy_impl(n, a, x, y); }                       \
  SDEBNN_CPU_CLONES void gemv(int64_t out, int64_t in, const T* W, const T* x, const T* b, T* y) {               \
    gemv_impl(out, in, W, x, b, y);                                                                              \
  }                                                                                                              \
  SDEBNN_CPU_CLONES void gemm(int64_t m, int64_t n, int64_t K, const T* A, int64_t sar, int64_t sak, const T* M, \
                              int64_t ldm, const T* z0, const T* z1, T t, T* Z, int64_t ldz) {                   \
    gemm_acc(m, n, K, A, sar, sak, M, ldm, z0, z1, t, Z, ldz);                                                   \
  }

SDEBNN_DENSE(float)
SDEBNN_DENSE(double)
#undef SDEBNN_DENSE

}  // namespace sde::dense
