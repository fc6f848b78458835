// The activation functions of every network in the engine (neural SDE drifts and diffusions, the
// SDE-BNN's hypernetwork and dynamics), and their slopes, in one place: ATen functions for any
// device, and raw loops over CPU memory for the hand-written kernels.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sde {

enum class Activation { Tanh, Softplus, Relu, Sigmoid, Identity };
Activation parse_activation(const std::string& name);
const char* to_string(Activation a);
const std::vector<Activation>& all_activations();

// act(z) by differentiable ATen ops: the autograd reference. Softplus is ATen's (beta 1,
// threshold 20) everywhere.
at::Tensor activate(Activation a, const at::Tensor& z);

// act(z) into `out` without a graph (out may be z itself, or a strided view): ATen's values, but
// on CPU in float32 tanh is the engine's rational approximation (within 2.4e-7).
void activate_into(Activation a, at::Tensor& out, const at::Tensor& z);

// v * act'(z), from a = act(z) alone (no pre-activation is kept): tanh 1 - a^2, sigmoid a (1 - a),
// relu [not a <= 0] (1 at NaN, as LibTorch), softplus sigmoid(z) = 1 - exp(-a), identity 1. One ATen
// kernel where ATen has one; differentiable (the Stratonovich correction differentiates slopes).
at::Tensor activation_backward(Activation act, const at::Tensor& v, const at::Tensor& a);

// tanh(x) into out (which may be x): on CPU in float32 the rational approximation, vectorised
// (tested against tanh through the addon's elementwise() hook); elsewhere ATen's tanh.
void tanh_into(const at::Tensor& x, at::Tensor& out);

// out[0, n) = act(z) and, where slope is not null, slope = act'(z), over CPU memory in one pass
// (softplus' value and slope share one exp). out may equal z when slope is null.
void activate_cpu(Activation a, int64_t n, const float* z, float* out, float* slope);
void activate_cpu(Activation a, int64_t n, const double* z, double* out, double* slope);

}  // namespace sde
