#include "sde/neural_kernels.h"

#include "sde/cpu_dispatch.h"

namespace sde {

namespace {

template <typename T_, bool HasDt, bool Correction, bool HasDW>
SDEBNN_INLINE void scaled_tanh_forward_loop(T_* __restrict F, const T_* __restrict f, const T_* __restrict T,
                                            const T_* __restrict S, const T_* __restrict dW, const ScaledTanhArgs& k) {
  const T_ o = static_cast<T_>(k.offset), h = static_cast<T_>(k.dt);
  for (int64_t b = 0; b < k.batch; ++b) {
    const int64_t row = b * k.d;
    for (int64_t i = 0; i < k.d; ++i) {
      const T_ t = T[row + i], g = S[i] * t + o;
      T_ out = 0;
      if (HasDt) out = h * (Correction ? f[row + i] - T_(0.5) * g * S[i] * (1 - t * t) : f[row + i]);
      if (HasDW) out += g * dW[row + i];
      F[row + i] = out;
    }
  }
}

template <typename T_, bool HasDt, bool Correction, bool HasDW>
SDEBNN_INLINE void scaled_tanh_backward_loop(const T_* __restrict a, const T_* __restrict T, const T_* __restrict S,
                                             const T_* __restrict dW, T_* __restrict A, T_* __restrict grad_y,
                                             T_* __restrict grad_S, const ScaledTanhArgs& k) {
  const T_ o = static_cast<T_>(k.offset), h = static_cast<T_>(k.dt);
  for (int64_t b = 0; b < k.batch; ++b) {
    const int64_t row = b * k.d;
    for (int64_t i = 0; i < k.d; ++i) {
      const T_ t = T[row + i], s = S[i], D = 1 - t * t;
      T_ gy = 0, gS = 0;
      if (HasDt) {
        const T_ Ai = a[row + i] * h;
        A[row + i] += Ai;
        if (Correction) {
          gy += T_(-0.5) * Ai * s * D * (s * (D - 2 * t * t) - 2 * o * t);
          gS += T_(-0.5) * Ai * D * (2 * s * t + o);
        }
      }
      if (HasDW) {
        const T_ aW = a[row + i] * dW[row + i];
        gy += aW * s * D;
        gS += aW * t;
      }
      grad_y[row + i] += gy;
      grad_S[i] += gS;
    }
  }
}

// The loops for the runtime flags (a correction needs a dt).
template <typename T_>
SDEBNN_INLINE void scaled_tanh_forward_dispatch(T_* F, const T_* f, const T_* T, const T_* S, const T_* dW,
                                                const ScaledTanhArgs& k, bool has_dt, bool correction) {
  const bool w = dW != nullptr;
  if (has_dt && correction) {
    return w ? scaled_tanh_forward_loop<T_, true, true, true>(F, f, T, S, dW, k)
             : scaled_tanh_forward_loop<T_, true, true, false>(F, f, T, S, dW, k);
  }
  if (has_dt) {
    return w ? scaled_tanh_forward_loop<T_, true, false, true>(F, f, T, S, dW, k)
             : scaled_tanh_forward_loop<T_, true, false, false>(F, f, T, S, dW, k);
  }
  return w ? scaled_tanh_forward_loop<T_, false, false, true>(F, f, T, S, dW, k)
           : scaled_tanh_forward_loop<T_, false, false, false>(F, f, T, S, dW, k);
}

template <typename T_>
SDEBNN_INLINE void scaled_tanh_backward_dispatch(const T_* a, const T_* T, const T_* S, const T_* dW, T_* A, T_* grad_y,
                                                 T_* grad_S, const ScaledTanhArgs& k, bool has_dt, bool correction) {
  const bool w = dW != nullptr;
  if (has_dt && correction) {
    return w ? scaled_tanh_backward_loop<T_, true, true, true>(a, T, S, dW, A, grad_y, grad_S, k)
             : scaled_tanh_backward_loop<T_, true, true, false>(a, T, S, dW, A, grad_y, grad_S, k);
  }
  if (has_dt) {
    return w ? scaled_tanh_backward_loop<T_, true, false, true>(a, T, S, dW, A, grad_y, grad_S, k)
             : scaled_tanh_backward_loop<T_, true, false, false>(a, T, S, dW, A, grad_y, grad_S, k);
  }
  return w ? scaled_tanh_backward_loop<T_, false, false, true>(a, T, S, dW, A, grad_y, grad_S, k)
           : scaled_tanh_backward_loop<T_, false, false, false>(a, T, S, dW, A, grad_y, grad_S, k);
}

}  // namespace

SDEBNN_CPU_CLONES void scaled_tanh_forward_cpu(float* F, const float* f, const float* T, const float* S,
                                               const float* dW, const ScaledTanhArgs& k, bool has_dt, bool correction) {
  scaled_tanh_forward_dispatch(F, f, T, S, dW, k, has_dt, correction);
}
SDEBNN_CPU_CLONES void scaled_tanh_forward_cpu(double* F, const double* f, const double* T, const double* S,
                                               const double* dW, const ScaledTanhArgs& k, bool has_dt,
                                               bool correction) {
  scaled_tanh_forward_dispatch(F, f, T, S, dW, k, has_dt, correction);
}

SDEBNN_CPU_CLONES void scaled_tanh_backward_cpu(const float* a, const float* T, const float* S, const float* dW,
                                                float* A, float* grad_y, float* grad_S, const ScaledTanhArgs& k,
                                                bool has_dt, bool correction) {
  scaled_tanh_backward_dispatch(a, T, S, dW, A, grad_y, grad_S, k, has_dt, correction);
}
SDEBNN_CPU_CLONES void scaled_tanh_backward_cpu(const double* a, const double* T, const double* S, const double* dW,
                                                double* A, double* grad_y, double* grad_S, const ScaledTanhArgs& k,
                                                bool has_dt, bool correction) {
  scaled_tanh_backward_dispatch(a, T, S, dW, A, grad_y, grad_S, k, has_dt, correction);
}

}  // namespace sde
