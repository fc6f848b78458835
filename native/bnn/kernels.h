// The SDE-BNN's networks as explicit forward functions with hand-written vector-Jacobian
// products: the hypernetwork g_phi([w, t]) and the hidden dynamics f_h(t, h; w) whose weights
// are views into the flat weight vector w. The forward functions are plain ATen code, so the
// same code is differentiable by autograd (the reference the fused VJPs are tested against).
// Tensor options always come from the inputs: the code runs on any device.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "bnn/config.h"

namespace bnn {

// What a forward pass keeps for its VJP: layer inputs and pre-activations, alternating.
using Cache = std::vector<at::Tensor>;

// Backprop through many solver steps gives each hypernetwork weight one rank-1 gradient per
// drift evaluation. A bank keeps the factors (the layer's cotangent row and input) instead, and
// `flush` adds them to the parameters' gradients as one matrix product per layer.
struct GradBank {
  std::vector<std::vector<at::Tensor>> rows, inputs;  // per layer
  bool empty() const;
  // Adds sum_k rows[j][k] (x) inputs[j][k] to params[2j].grad and sum_k rows[j][k] to params[2j+1].grad.
  void flush(const std::vector<at::Tensor>& params);
};

// g_phi([w, t]): an MLP with sizes [w_dim + 1, hidden..., w_dim], last layer zero-initialised.
class Hypernet {
 public:
  Hypernet(int64_t w_dim, std::vector<int64_t> hidden, Activation activation);
  int64_t w_dim() const { return w_dim_; }
  int64_t layers() const { return static_cast<int64_t>(sizes_.size()) - 1; }
  const std::vector<int64_t>& sizes() const { return sizes_; }  // [w_dim + 1, hidden..., w_dim]
  Activation activation() const { return activation_; }
  // [W_0, b_0, W_1, b_1, ...] on CPU (PyTorch's Linear init; last layer zeros).
  std::vector<at::Tensor> init(at::Generator& gen, const at::TensorOptions& options) const;
  std::vector<std::vector<int64_t>> parameter_shapes() const;

  at::Tensor forward(const std::vector<at::Tensor>& params, const at::Tensor& w, double t, Cache* cache) const;
  // VJP at the cached point. vp flows to the parameters and to w; vx (optional) to w only
  // (a stop-gradient on the parameters). Returns (d params, d w); with a bank, the parameters'
  // gradients go to the bank and come back undefined.
  std::pair<std::vector<at::Tensor>, at::Tensor> vjp(const std::vector<at::Tensor>& params, const Cache& cache,
                                                     const at::Tensor& vp, const at::Tensor& vx, GradBank* bank = nullptr) const;
  // tr(d g / d w) at (w, t), exactly, by differentiable ATen ops.
  at::Tensor trace_jacobian(const std::vector<at::Tensor>& params, const at::Tensor& w, double t) const;

 private:
  int64_t w_dim_;
  std::vector<int64_t> sizes_;
  Activation activation_;
};

// f_h(t, h; w) for a batch of hidden states, on h as it is stored in the block's flat state
// (`state` layout: the MLP's [batch, d]; the conv's zero-bordered channel-major
// [C, batch, H + 2, W + 2], which turns the 3x3 convolutions into plain matrix products).
class Dynamics {
 public:
  virtual ~Dynamics() = default;
  virtual int64_t w_dim() const = 0;
  // numel of h in the state layout, for a batch.
  virtual int64_t state_numel(int64_t batch) const = 0;
  // h [batch, ...] -> the state layout (flat), and back (a view where possible). Differentiable.
  virtual at::Tensor to_state(const at::Tensor& h) const = 0;
  virtual at::Tensor from_state(const at::Tensor& flat, int64_t batch) const = 0;
  // f_h on the flat state part (shaped like it). When cache != nullptr, keeps what vjp needs.
  virtual at::Tensor forward(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache) const = 0;
  // The same function by ordinary differentiable ATen ops (the conv: at::conv2d), for autograd.
  virtual at::Tensor reference(double t, const at::Tensor& h, const at::Tensor& w) const { return forward(t, h, w, nullptr); }
  // (d h, d w) for the output cotangent v (flat, state layout) at the cached point.
  virtual std::pair<at::Tensor, at::Tensor> vjp(double t, const at::Tensor& w, const Cache& cache, const at::Tensor& v) const = 0;
  // w_0 on CPU: N(0, std^2), or PyTorch's default layer init (fan-in uniform) per slice.
  virtual at::Tensor init_w0(W0Init init, double std, at::Generator& gen, const at::TensorOptions& options) const = 0;
};

// Linear(d, hidden[0]) act ... Linear(hidden[-1], d); t appended to each layer's input when
// time_input. Weights then bias per layer, row-major [out, in(+1)], as slices of w.
class MlpDynamics : public Dynamics {
 public:
  MlpDynamics(int64_t d, std::vector<int64_t> hidden, Activation activation, bool time_input);
  int64_t w_dim() const override { return w_dim_; }
  int64_t state_numel(int64_t batch) const override { return batch * d_; }
  at::Tensor to_state(const at::Tensor& h) const override { return h.reshape({-1}); }
  at::Tensor from_state(const at::Tensor& flat, int64_t batch) const override { return flat.view({batch, d_}); }
  at::Tensor forward(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache) const override;
  std::pair<at::Tensor, at::Tensor> vjp(double t, const at::Tensor& w, const Cache& cache, const at::Tensor& v) const override;
  at::Tensor init_w0(W0Init init, double std, at::Generator& gen, const at::TensorOptions& options) const override;
  int64_t d() const { return d_; }
  const std::vector<int64_t>& sizes() const { return sizes_; }  // [d, hidden..., d]
  Activation activation() const { return activation_; }
  bool time_input() const { return time_input_; }

 private:
  int64_t d_;
  std::vector<int64_t> sizes_;
  Activation activation_;
  bool time_input_;
  int64_t w_dim_;
};

// conv3x3(cat[h, t] : C+1 -> hidden, pad 1) act conv3x3(cat[., t] : hidden+1 -> C, pad 1);
// kernels [out, in, 3, 3] then biases, as slices of w (PyTorch's layouts). t is a constant
// channel inside the image and zero in the padding, exactly as cat-then-pad would give.
// In the state layout a 3x3 tap is a fixed column offset: on CPU both convolutions and their VJPs
// are the shifted sums of conv_kernels.h, image by image in parallel; on other devices
// GEMMs over shifted copies (im2col).
class ConvDynamics : public Dynamics {
 public:
  ConvDynamics(int64_t channels, int64_t height, int64_t width_px, int64_t hidden, Activation activation);
  int64_t w_dim() const override { return w_dim_; }
  int64_t state_numel(int64_t batch) const override { return c_ * batch * (h_ + 2) * (w_ + 2); }
  at::Tensor to_state(const at::Tensor& h) const override;
  at::Tensor from_state(const at::Tensor& flat, int64_t batch) const override;
  at::Tensor forward(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache) const override;
  at::Tensor reference(double t, const at::Tensor& h, const at::Tensor& w) const override;
  std::pair<at::Tensor, at::Tensor> vjp(double t, const at::Tensor& w, const Cache& cache, const at::Tensor& v) const override;
  // The same into the caller's contiguous buffers (out, dh: state_numel; dw: w_dim), as the fast
  // solver steps: no allocation and no copy per evaluation.
  void forward_into(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache, at::Tensor& out) const;
  void vjp_into(double t, const at::Tensor& w, const Cache& cache, const at::Tensor& v, at::Tensor& dh, at::Tensor& dw) const;
  // forward_into and vjp_into at one point, for a cotangent known beforehand (the adjoint's step):
  // on CPU image by image, the activations never leaving the worker's cache.
  void forward_vjp_into(double t, const at::Tensor& h, const at::Tensor& w, const at::Tensor& v, at::Tensor& out,
                        at::Tensor& dh, at::Tensor& dw) const;
  at::Tensor init_w0(W0Init init, double std, at::Generator& gen, const at::TensorOptions& options) const override;

 private:
  // 1 inside the images, 0 on the borders, [batch * (H+2) * (W+2)]; kept for the last batch size.
  at::Tensor mask(int64_t batch, const at::TensorOptions& options) const;
  // A buffer for the activations a forward pass keeps for its VJP ([hidden, columns] on CPU, with
  // the t row below on other devices): one that nothing references any more (its cache was
  // dropped) if there is one, else a new one, kept for reuse while the pool holds less than
  // kPoolBytes. Backprop keeps one per solver step; without the pool each training step
  // page-faulted all of them in again (147 MB for W2).
  at::Tensor activation_buffer(at::IntArrayRef shape, const at::TensorOptions& options) const;
  static constexpr int64_t kPoolBytes = int64_t(512) << 20;

  int64_t c_, h_, w_, hidden_;
  Activation activation_;
  int64_t w_dim_;
  mutable std::mutex mask_mutex_;
  mutable at::Tensor mask_;
  mutable int64_t mask_batch_ = -1;
  mutable std::mutex pool_mutex_;
  mutable std::vector<at::Tensor> pool_;
};

}  // namespace bnn
