// A multilayer perceptron's forward pass and vector-Jacobian product, written once, in two backends
// behind one description of the network (MlpShape, and its weights as tensors or raw pointers):
//   - ATen (mlp_forward, mlp_vjp): any device. Without a cache mlp_forward is plain differentiable
//     ATen (the autograd reference); with one it runs without a graph on the engine's activations
//     (activate_into: in float32 on CPU tanh is a rational approximation), keeping what mlp_vjp needs.
//   - raw CPU (MlpKernel<T>): the buffered solver's, over caller memory; each forward pass is kept
//     in a slot for its VJP. Small products run on the engine's dense loops (sde/dense.h), large
//     products split by rows between LibTorch's threads, and weight matrices past L2 on BLAS.
//     MlpRawPass puts it behind tensors, for a pass whose VJP follows at once.
// Its users: the neural SDE's drift, the SDE-BNN's hypernetwork g([w, t]) and its MLP dynamics
// (whose weights are slices of the weight state w).
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "sde/activations.h"
#include "sde/buffers.h"

namespace sde {

// Where t enters: nowhere, as an extra input of the first layer (a neural SDE's timeInput, the
// hypernetwork's [w, t]), or of every layer (the SDE-BNN's MLP dynamics).
enum class TimeInput { None, First, Every };

// Linear(sizes[0] (+1), sizes[1]) act ... act Linear(sizes[L-1] (+1), sizes[L]): the activation
// between layers, none after the last. Layer j's weight W_j is [sizes[j + 1], fan_in(j)], its
// last column multiplying t where the layer has the time input; b_j is [sizes[j + 1]].
struct MlpShape {
  std::vector<int64_t> sizes;
  Activation activation = Activation::Tanh;
  TimeInput time = TimeInput::None;

  int64_t layers() const { return static_cast<int64_t>(sizes.size()) - 1; }
  bool has_time(int64_t j) const { return time == TimeInput::Every || (time == TimeInput::First && j == 0); }
  int64_t fan_in(int64_t j) const { return sizes[j] + (has_time(j) ? 1 : 0); }
  // The flat layout of the weights (the SDE-BNN's w): per layer W_j row-major, then b_j.
  int64_t offset(int64_t j) const;
  int64_t numel() const { return offset(layers()); }
  // [W_0, b_0, W_1, b_1, ...]
  std::vector<std::vector<int64_t>> parameter_shapes() const;
};

// PyTorch's default Linear/Conv init: n numbers from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn on
// CPU in `options`' dtype from `gen`, so that every device gets the same numbers.
at::Tensor fan_in_uniform(int64_t n, int64_t fan_in, at::Generator& gen, const at::TensorOptions& options);

// ---- ATen backend ----

struct MlpWeights {
  std::vector<at::Tensor> W, b;
  static MlpWeights of_list(const std::vector<at::Tensor>& params);          // [W_0, b_0, W_1, ...]
  static MlpWeights of_flat(const MlpShape& shape, const at::Tensor& flat);  // views into a flat vector
};

// Each layer's input, with t appended where the layer has the time input.
using MlpCache = std::vector<at::Tensor>;

// MLP(x) for x [batch, sizes[0]].
at::Tensor mlp_forward(const MlpShape& shape, const MlpWeights& w, double t, const at::Tensor& x, MlpCache* cache);

// What mlp_vjp gives besides d x. `W`, `b`: the weights' gradients, written into where defined
// (views of a flat gradient, say), else set. With `deltas` instead: each layer's output cotangent
// [batch, out] (the rank-1 factors of the weights' gradients at batch 1, with the cache's inputs).
struct MlpGrads {
  bool deltas_only = false;
  std::vector<at::Tensor> W, b, deltas;
};

// v . dMLP/dx at the cached point for the output cotangent v [batch, out]; the weights' part into
// `grads` unless it is null. No graph.
at::Tensor mlp_vjp(const MlpShape& shape, const MlpWeights& w, const MlpCache& cache, const at::Tensor& v,
                   MlpGrads* grads);

// ---- raw CPU backend ----

template <typename T>
class MlpKernel {
 public:
  // Per layer: W_j (rows of fan_in(j)) and b_j; optionally Wt_j, W_j[:, :in] transposed and
  // contiguous [in, out], for weights fixed through a solve (else transposed per call).
  struct Weights {
    std::vector<const T*> W, b, Wt;
  };
  static Weights weights(const MlpShape& shape, const T* flat);
  static Weights weights(const std::vector<at::Tensor>& params);  // [W_0, b_0, ...], contiguous CPU

  // The weights' gradients from vjp: written (Write) or added (Add) into W/b in the layout of
  // Weights, or each layer's output cotangent copied to rows[j] (Rows; batch 1: the factors of a
  // rank-1 gradient bank, with input(slot, j)).
  struct Grads {
    enum class Mode { None, Write, Add, Rows };
    Mode mode = Mode::None;
    std::vector<T*> W, b, rows;
  };

  // `slots` forward passes are kept for their VJPs; buffers come from `pool`.
  MlpKernel(const MlpShape& shape, int64_t batch, int64_t slots, BufferPool& pool, const at::TensorOptions& options);

  // out [batch, sizes.back()] = MLP(x [batch, sizes[0]]), keeping the pass at `slot`.
  void forward(const Weights& w, int64_t slot, double t, const T* x, T* out);
  // The VJP at `slot` for the output cotangent v: dx (overwritten, unless null) and the weights'
  // gradients by `grads`.
  void vjp(const Weights& w, int64_t slot, double t, const T* v, T* dx, const Grads& grads);
  // Layer j's input at `slot` (batch 1: with t appended where the layer has it).
  const T* input(int64_t slot, int64_t j) const;
  int64_t input_size(int64_t j) const;                              // its length
  const at::Tensor& inputs(int64_t j) const { return inputs_[j]; }  // every slot's, [slots, input_size(j)]
  // Grads writing (or adding) into a flat gradient in the layout of weights(shape, flat).
  static Grads into(const MlpShape& shape, T* flat, typename Grads::Mode mode);

 private:
  bool blas(int64_t j) const;
  bool by_rows() const;
  template <typename F>
  void run_rows(const F& rows) const;
  void layer_grads(int64_t j, double t, const T* a, const T* delta, const Grads& grads);

  MlpShape shape_;
  int64_t batch_;
  at::TensorOptions options_;
  std::vector<at::Tensor> inputs_, slopes_;  // per layer [slots, ...]
  at::Tensor scratch_;
  // into scratch_: a pre-activation [batch, widest], the hidden layers' cotangents, the layers'
  // transposed weights (or a gradient's), their effective biases, and one row
  T *z_ = nullptr, *deltas_ = nullptr, *wt_ = nullptr, *bias_ = nullptr, *row_ = nullptr;
};

// One forward pass of the raw CPU backend over tensors, kept for its VJPs: mlp_forward with a cache
// and mlp_vjp at the raw kernel's speed (the ATen backend's products cost about twice as much at
// the neural SDE's shapes). Its buffers, and the tensors it returns, come from `pool` (no page
// faults on each evaluation's new memory); they stay taken while the pass lives, so it suits a
// pass consumed at once (an adjoint's evaluation). One kept in an autograd graph keeps cache().
class MlpRawPass {
 public:
  // Whether the raw backend takes x and w: CPU float32/float64, contiguous, x [batch, sizes[0]].
  static bool applies(const MlpShape& shape, const MlpWeights& w, const at::Tensor& x);
  // MLP(x) at t, kept (applies(shape, w, x) must hold; w and pool must outlive the pass).
  MlpRawPass(const MlpShape& shape, const MlpWeights& w, double t, const at::Tensor& x, BufferPool& pool);
  const at::Tensor& output() const { return out_; }
  // v . dMLP/dx at the pass's point for v [batch, out]; the weights' gradients set in `grads`
  // (W and b) unless it is null.
  at::Tensor vjp(const at::Tensor& v, MlpGrads* grads) const;
  // The pass as the ATen backend's cache for mlp_vjp, its hidden layers' inputs copied out (x, the
  // pass's input, is the first layer's; t appended where a layer has it).
  MlpCache cache(const at::Tensor& x) const;

  struct Kernel;  // MlpKernel<T> for x's dtype

 private:
  std::shared_ptr<Kernel> kernel_;
  at::Tensor out_;
};

}  // namespace sde
