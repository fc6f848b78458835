// The neural SDE's scaled-tanh diffusion g = sigmoid(s) tanh(y) + offset, its elementwise work
// over CPU memory in one pass each, for the fused and the buffered routes.
#pragma once
#include <cstdint>

namespace sde {

// The scaled-tanh diffusion's elementwise work in one pass each (CPU, contiguous): with
// S = sigmoid(s) per column, T = tanh(y), g = S T + o, D = 1 - T^2 and the Ito correction
// c = -1/2 g S D:
//   forward:  F = dt (f + c) + g dW           (f: the drift MLP's output)
//   backward: A = a dt (the drift MLP's cotangent), grad_y = A dc/dy + a dW S D,
//             grad_S = sum over the batch of A dc/dS + a dW T,
//             all three added to what the buffers hold (several terms at one point).
// Either term may be absent (HasDt false / dW null); Correction adds c. The flags are template
// arguments so that each inner loop is branch-free and vectorises; the entry points are cloned
// for AVX-512 and AVX2 (SDEBNN_CPU_CLONES; the loops inline into each clone).
struct ScaledTanhArgs {
  int64_t batch, d;
  double dt, offset;
};

void scaled_tanh_forward_cpu(float* F, const float* f, const float* T, const float* S, const float* dW,
                             const ScaledTanhArgs& k, bool has_dt, bool correction);
void scaled_tanh_forward_cpu(double* F, const double* f, const double* T, const double* S, const double* dW,
                             const ScaledTanhArgs& k, bool has_dt, bool correction);
void scaled_tanh_backward_cpu(const float* a, const float* T, const float* S, const float* dW, float* A, float* grad_y,
                              float* grad_S, const ScaledTanhArgs& k, bool has_dt, bool correction);
void scaled_tanh_backward_cpu(const double* a, const double* T, const double* S, const double* dW, double* A,
                              double* grad_y, double* grad_S, const ScaledTanhArgs& k, bool has_dt, bool correction);

}  // namespace sde
