// The 3x3 convolutions of ConvDynamics on CPU, written out for few channels (the SDE-BNN's blocks
// have 1-3 image channels against 16-64 hidden ones, where im2col + GEMM spends most of its time
// packing an inner dimension of 27).
//
// Both work on rows of the zero-bordered layout (dynamics.h): a 3x3 tap is a fixed column offset,
// so a convolution, its input VJP (the same with the kernel transposed and the offsets negated)
// and its weight gradient are sums over shifted rows. Rows are given as pointers to their column
// 0; every shifted read must stay inside the caller's rows (the zero borders see to that).
#pragma once
#include <cstdint>

#include "bnn/config.h"  // Activation

namespace bnn::conv {

// out[m][j] = init[m][j] (0 without init) + sum_{k < K, tap < 9} W[(m K + k) 9 + tap] x[k][j + off[tap]]
// for j in [0, n). out must not overlap init or x (the last vector may be computed twice).
void shifted_sum(int64_t M, int64_t K, const float* W, const float* const* x, const int64_t* off,
                 const float* const* init, float* const* out, int64_t n);
void shifted_sum(int64_t M, int64_t K, const double* W, const double* const* x, const int64_t* off,
                 const double* const* init, double* const* out, int64_t n);

// G[(m K + k) 9 + tap] = sum_{j < n} a[m][j] x[k][j + off[tap]], summed lane-wise then in a fixed order.
// Fastest with many rows a and few rows x (rows of a share each shifted load of x).
void shifted_dot(int64_t M, int64_t K, const float* const* a, const float* const* x, const int64_t* off, float* G,
                 int64_t n);
void shifted_dot(int64_t M, int64_t K, const double* const* a, const double* const* x, const int64_t* off, double* G,
                 int64_t n);

// out[m][j] = softplus(z[m][j]) mask[j] (sde/vector_math.h's softplus: beta 1, threshold 20).
void softplus_masked(int64_t M, const float* const* z, const float* mask, float* const* out, int64_t n);
void softplus_masked(int64_t M, const double* const* z, const double* mask, double* const* out, int64_t n);

// dz[m][j] = da[m][j] act'(z) mask[j], act' found from a = act(z) (softplus: 1 - exp(-a)), and
// db[m] = sum_j dz[m][j].
void slope_product(Activation act, int64_t M, const float* const* a, const float* const* da, const float* mask,
                   float* const* dz, float* db, int64_t n);
void slope_product(Activation act, int64_t M, const double* const* a, const double* const* da, const double* mask,
                   double* const* dz, double* db, int64_t n);

// sum_{j < n} x[j], lane-wise then in a fixed order.
float sum(const float* x, int64_t n);
double sum(const double* x, int64_t n);

}  // namespace bnn::conv
