#include "sde/activations.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

#include "sde/cpu_dispatch.h"
#include "sde/errors.h"
#include "sde/vector_math.h"

namespace sde {

// Names and enums: one small table per enum, the same shape as parse_method and the others (by design).
Activation parse_activation(const std::string& name) {
  if (name == "tanh") return Activation::Tanh;
  if (name == "softplus") return Activation::Softplus;
  if (name == "relu") return Activation::Relu;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "identity") return Activation::Identity;
  throw invalid_argument("Expected 'tanh', 'softplus', 'relu', 'sigmoid' or 'identity' for activation but received '" +
                         name + "'");
}

const char* to_string(Activation a) {
  switch (a) {
    case Activation::Tanh: return "tanh";
    case Activation::Softplus: return "softplus";
    case Activation::Relu: return "relu";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Identity: return "identity";
  }
  return "?";
}

const std::vector<Activation>& all_activations() {
  static const std::vector<Activation> all{Activation::Tanh, Activation::Softplus, Activation::Relu,
                                           Activation::Sigmoid, Activation::Identity};
  return all;
}

at::Tensor activate(Activation a, const at::Tensor& z) {
  switch (a) {
    case Activation::Tanh: return at::tanh(z);
    case Activation::Softplus: return at::softplus(z);
    case Activation::Relu: return at::relu(z);
    case Activation::Sigmoid: return at::sigmoid(z);
    case Activation::Identity: return z;
  }
  return z;
}

namespace {

SDEBNN_CPU_CLONES void tanh_kernel(const float* __restrict x, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = simd::tanh_rational(x[i]);
}

SDEBNN_CPU_CLONES void softplus_kernel(int64_t n, const float* z, float* out, float* slope) {
  simd::softplus(n, z, out, slope);
}
SDEBNN_CPU_CLONES void softplus_kernel(int64_t n, const double* z, double* out, double* slope) {
  simd::softplus(n, z, out, slope);
}

// tanh over CPU floats; in place (x == out) through a small buffer, the kernel's pointers being restrict.
void tanh_float(const float* x, float* out, int64_t n) {
  if (x != out) return tanh_kernel(x, out, n);
  constexpr int64_t kChunk = 1024;
  alignas(64) float tmp[kChunk];
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t len = std::min(kChunk, n - i);
    tanh_kernel(x + i, tmp, len);
    std::copy(tmp, tmp + len, out + i);
  }
}

template <typename T>
at::Tensor wrap(const T* p, int64_t n) {
  return at::from_blob(const_cast<T*>(p), {n}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

template <typename T>
void activate_cpu_t(Activation a, int64_t n, const T* z, T* out, T* s) {
  switch (a) {
    case Activation::Softplus: softplus_kernel(n, z, out, s); return;
    case Activation::Relu:
      for (int64_t i = 0; i < n; ++i) {
        out[i] = z[i] <= T(0) ? T(0) : z[i];  // NaN stays NaN
        if (s) s[i] = simd::slope_from_output<T, T>(a, out[i]);
      }
      return;
    case Activation::Identity:
      if (out != z) std::memcpy(out, z, sizeof(T) * n);
      if (s) std::fill(s, s + n, T(1));
      return;
    case Activation::Tanh:
    case Activation::Sigmoid: {
      at::Tensor o = wrap(out, n);
      activate_into(a, o, wrap(z, n));  // float tanh: the rational kernel; otherwise ATen's vectorised CPU kernels
      if (s) {
        for (int64_t i = 0; i < n; ++i) s[i] = simd::slope_from_output<T, T>(a, out[i]);
      }
      return;
    }
  }
}

}  // namespace

void tanh_into(const at::Tensor& x, at::Tensor& out) {
  if (x.is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous() && out.is_contiguous() &&
      out.scalar_type() == at::kFloat && out.sizes().equals(x.sizes())) {
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    // ATen's grain for elementwise work: small tensors stay on the calling thread.
    at::parallel_for(0, x.numel(), at::internal::GRAIN_SIZE,
                     [&](int64_t begin, int64_t end) { tanh_float(in + begin, o + begin, end - begin); });
    return;
  }
  at::tanh_out(out, x);
}

void activate_into(Activation a, at::Tensor& out, const at::Tensor& z) {
  switch (a) {
    case Activation::Tanh: tanh_into(z, out); return;
    case Activation::Softplus: at::softplus_out(out, z, 1, 20); return;
    case Activation::Relu: at::clamp_min_out(out, z, 0); return;
    case Activation::Sigmoid: at::sigmoid_out(out, z); return;
    case Activation::Identity:
      if (!out.is_same(z)) out.copy_(z);
      return;
  }
}

at::Tensor activation_backward(Activation act, const at::Tensor& v, const at::Tensor& a) {
  switch (act) {
    case Activation::Tanh: return at::tanh_backward(v, a);
    case Activation::Sigmoid: return at::sigmoid_backward(v, a);
    case Activation::Relu: return at::threshold_backward(v, a, 0);
    case Activation::Softplus: return v * -at::expm1(-a);  // sigmoid(z) = 1 - exp(-softplus(z)); differentiable
    case Activation::Identity: return v;
  }
  return v;
}

void activate_cpu(Activation a, int64_t n, const float* z, float* out, float* slope) {
  activate_cpu_t(a, n, z, out, slope);
}
void activate_cpu(Activation a, int64_t n, const double* z, double* out, double* slope) {
  activate_cpu_t(a, n, z, out, slope);
}

}  // namespace sde
