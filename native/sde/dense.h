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

// y[n] = (b +) sum_k x[k] M[k, :], M [m, n] (n large): W^T x for W [m, n].
void gemv_t(int64_t m, int64_t n, const float* M, const float* x, const float* b, float* y);
void gemv_t(int64_t m, int64_t n, const double* M, const double* x, const double* b, double* y);

// Z [B, out] = bias (+ t * tcol) + A [B, in] Wt [in, out] (bias and tcol per column, may be null).
void mm_bias(int64_t B, int64_t in, int64_t out, const float* A, const float* Wt, const float* bias, const float* tcol, float t,
             float* Z);
void mm_bias(int64_t B, int64_t in, int64_t out, const double* A, const double* Wt, const double* bias, const double* tcol,
             double t, double* Z);

// D [B, in] = C [B, out] W[:, :in], W [out, ld].
void mm_back(int64_t B, int64_t in, int64_t out, const float* C, const float* W, int64_t ld, float* D);
void mm_back(int64_t B, int64_t in, int64_t out, const double* C, const double* W, int64_t ld, double* D);

// G [in, out] = A^T C, A [B, in], C [B, out] (out >= in).
void mm_at_c(int64_t B, int64_t in, int64_t out, const float* A, const float* C, float* G);
void mm_at_c(int64_t B, int64_t in, int64_t out, const double* A, const double* C, double* G);

// G [out, :in] (row stride ld) = C^T A, A [B, in], C [B, out] (in > out).
void mm_ct_a(int64_t B, int64_t in, int64_t out, const float* A, const float* C, float* G, int64_t ld);
void mm_ct_a(int64_t B, int64_t in, int64_t out, const double* A, const double* C, double* G, int64_t ld);

}  // namespace sde::dense
