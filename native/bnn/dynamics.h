// The hidden dynamics f_h(t, h; w) of an SDE-BNN block: an interface for the MLP and conv
// dynamics, whose weights are slices of the flat weight state w.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <memory>
#include <utility>
#include <vector>

#include "bnn/config.h"
#include "sde/buffers.h"
#include "sde/mlp.h"

namespace bnn {

// What a forward pass keeps for its VJP.
using Cache = sde::MlpCache;

// The raw CPU form of the dynamics for the buffered solver: over caller memory, each forward pass
// that is stored kept in its slot for vjp. Made by Dynamics::kernel for one solve.
template <typename T>
class DynamicsKernel {
 public:
  virtual ~DynamicsKernel() = default;
  // fh (nh) = f(t, h; w); with `store`, keeps at `slot` what vjp(slot) needs.
  virtual void forward(int64_t slot, double t, const T* h, const T* w, T* fh, bool store) = 0;
  // (dh, dw) for the cotangent v at the stored point; both overwritten (dw: all of w_dim).
  virtual void vjp(int64_t slot, double t, const T* w, const T* v, T* dh, T* dw) = 0;
  // Both at one point, for a cotangent known beforehand (the adjoint's step); nothing is stored.
  virtual void forward_vjp(double t, const T* h, const T* w, const T* v, T* fh, T* dh, T* dw) {
    forward(0, t, h, w, fh, true);
    vjp(0, t, w, v, dh, dw);
  }
};

// f_h for a batch of hidden states, on h as it is stored in the block's flat state (`state`
// layout: the MLP's [batch, d]; the conv's zero-bordered channel-major [C, batch, H + 2, W + 2],
// which turns the 3x3 convolutions into shifted sums).
class Dynamics {
 public:
  virtual ~Dynamics() = default;
  virtual int64_t w_dim() const = 0;
  // numel of h in the state layout, for a batch.
  virtual int64_t state_numel(int64_t batch) const = 0;
  // h [batch, ...] -> the state layout (flat), and back (a view where possible). Differentiable.
  virtual at::Tensor to_state(const at::Tensor& h) const = 0;
  virtual at::Tensor from_state(const at::Tensor& flat, int64_t batch) const = 0;
  // f_h on the flat state part (shaped like it), without a graph; when cache != nullptr, keeps
  // what vjp needs. Any device.
  virtual at::Tensor forward(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache) const = 0;
  // The same function by differentiable ATen ops, for autograd.
  virtual at::Tensor reference(double t, const at::Tensor& h, const at::Tensor& w) const = 0;
  // (d h, d w) for the output cotangent v (flat, state layout) at the cached point.
  virtual std::pair<at::Tensor, at::Tensor> vjp(double t, const at::Tensor& w, const Cache& cache,
                                                const at::Tensor& v) const = 0;
  // The raw CPU form for a solve of `batch` with `slots` stored evaluations, buffers from `pool`.
  virtual std::unique_ptr<DynamicsKernel<float>> kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                        float) const = 0;
  virtual std::unique_ptr<DynamicsKernel<double>> kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                         double) const = 0;
  // w_0 on CPU: N(0, std^2), or PyTorch's default layer init (fan-in uniform) per slice.
  virtual at::Tensor init_w0(W0Init init, double std, at::Generator& gen, const at::TensorOptions& options) const = 0;
};

}  // namespace bnn
