// Dense products over raw CPU memory for the hand-written kernels' small shapes (the SDE-BNN's
// hypernetwork and MLP dynamics, where a call into BLAS costs more than the product): row-major,
// contiguous rows, no aliasing between inputs and outputs. Each entry point is cloned per ISA
// (cpu_dispatch.h). Every sum runs in a fixed order: results do not depend on threads.
#pragma once
#include <cstdint>

namespace sde::dense {

// sum_i x[i] y[i], summed lane-wise (16 lanes) then in a fixed order.
float dot(int64_t n, const float* x, const float* y);
double dot(int64_t n, const double* x, const double* y);

// y[0, n) += a x
void axpy(int64_t n, float a, const float* x, float* y);
void axpy(int64_t n, double a, const double* x, double* y);

// y[out] = (b +) W x, W [out, in]. Rows are summed in tiles of 4 (long rows) or 8 (short rows,
// reduced together by in-lane shuffles).
void gemv(int64_t out, int64_t in, const float* W, const float* x, const float* b, float* y);
void gemv(int64_t out, int64_t in, const double* W, const double* x, const double* b, double* y);

// Z[r, c] (r < m, c < n, row stride ldz) = z0[c] (+ t z1[c]) (0 without z0) + sum_{k < K} A(r, k) M[k, c],
// with A(r, k) = A[r sar + k sak] (a matrix or a transposed one) and M's rows ldm apart. Every
// element's k sum runs in order, in registers across a tile of rows and columns: each element is
// one caller's, so splitting the rows between threads changes no bit.
void gemm(int64_t m, int64_t n, int64_t K, const float* A, int64_t sar, int64_t sak, const float* M, int64_t ldm,
          const float* z0, const float* z1, float t, float* Z, int64_t ldz);
void gemm(int64_t m, int64_t n, int64_t K, const double* A, int64_t sar, int64_t sak, const double* M, int64_t ldm,
          const double* z0, const double* z1, double t, double* Z, int64_t ldz);

// y[n] = (b +) sum_k x[k] M[k, :], M [m, n]: W^T x for W [m, n].
template <typename T>
void gemv_t(int64_t m, int64_t n, const T* M, const T* x, const T* b, T* y) {
  gemm(1, n, m, x, 0, 1, M, n, b, static_cast<const T*>(nullptr), T(0), y, n);
}

}  // namespace sde::dense
