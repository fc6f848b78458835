// The hypernetwork g_phi([w, t]) of an SDE-BNN block: the posterior weight SDE's drift is
// -w + g. An MLP (sde/mlp.h) [w_dim (+ t), hidden..., w_dim] whose last layer starts at zero, so
// that the posterior starts equal to the prior and the KL at zero.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

#include "bnn/config.h"
#include "sde/mlp.h"

namespace bnn {

// Backprop through many solver steps gives each hypernetwork weight one rank-1 gradient per
// drift evaluation (the network runs on one vector). A bank keeps the factors (each layer's output
// cotangent and input) instead, and `flush` adds them to the parameters' gradients as one matrix
// product per layer.
struct GradBank {
  std::vector<std::vector<at::Tensor>> rows, inputs;  // per layer
  // Adds sum_k rows[j][k] (x) inputs[j][k] to params[2j].grad and sum_k rows[j][k] to params[2j+1].grad.
  void flush(const std::vector<at::Tensor>& params);
};

// sum_k rows[k] (x) inputs[k] and sum_k rows[k] for rows [K, out], inputs [K, in], times `sign`:
// a rank-K product. On CPU by the engine's own loops (BLAS's thread wake-ups and output zeroing
// cost more than these products of K of 20 or so), elsewhere by at::mm.
std::pair<at::Tensor, at::Tensor> bank_product(const at::Tensor& rows, const at::Tensor& inputs, double sign = 1.0);

class Hypernet {
 public:
  Hypernet(int64_t w_dim, std::vector<int64_t> hidden, Activation activation);
  int64_t w_dim() const { return shape_.sizes.back(); }
  const sde::MlpShape& shape() const { return shape_; }
  // [W_0, b_0, W_1, b_1, ...] on CPU in `options`' dtype (PyTorch's Linear init; last layer zeros).
  std::vector<at::Tensor> init(at::Generator& gen, const at::TensorOptions& options) const;

  // g [w_dim] at (w, t): differentiable without a cache, else without a graph keeping what vjp needs.
  at::Tensor forward(const std::vector<at::Tensor>& params, const at::Tensor& w, double t, sde::MlpCache* cache) const;
  // VJP at the cached point. vp flows to the parameters and to w; vx (optional) to w only (a
  // stop-gradient on the parameters). Returns (d params, d w); with a bank, the parameters'
  // gradients go to the bank and come back undefined.
  std::pair<std::vector<at::Tensor>, at::Tensor> vjp(const std::vector<at::Tensor>& params, const sde::MlpCache& cache,
                                                     const at::Tensor& vp, const at::Tensor& vx,
                                                     GradBank* bank = nullptr) const;
  // tr(d g / d w) at (w, t), exactly, by differentiable ATen ops.
  at::Tensor trace_jacobian(const std::vector<at::Tensor>& params, const at::Tensor& w, double t) const;

 private:
  sde::MlpShape shape_;
};

}  // namespace bnn
