// Neural SDEs from a declarative spec: drift and diffusion networks whose parameters are
// leaf tensors (readable and writable by name), never JavaScript callbacks per step.
#pragma once
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sde/activations.h"
#include "sde/sde.h"

namespace sde {

struct MlpSpec {
  std::vector<int64_t> hidden;  // hidden widths; input and output widths follow from the SDE
  Activation activation = Activation::Tanh;
  bool time_input = false;  // append t to the input
};

// A plain MLP over leaf parameter tensors.
class Mlp {
 public:
  Mlp(int64_t in, int64_t out, const MlpSpec& spec, const at::TensorOptions& options, const std::string& prefix,
      at::Generator& gen);
  at::Tensor forward(double t, const at::Tensor& x) const;
  // The same without a graph, keeping each layer's input and pre-activation for vjp.
  at::Tensor forward_cached(double t, const at::Tensor& x, std::vector<at::Tensor>& cache) const;
  // d/dx of v . MLP(x) at the cached point; writes the weights' and biases' gradients, in
  // collect() order, to grads[0 .. 2 * layers) unless grads is null.
  at::Tensor vjp(const std::vector<at::Tensor>& cache, const at::Tensor& v, at::Tensor* grads) const;
  size_t num_tensors() const { return 2 * weights_.size(); }
  void collect(std::vector<std::pair<std::string, at::Tensor>>& named) const;

 private:
  MlpSpec spec_;
  std::vector<at::Tensor> weights_, biases_;
  std::string prefix_;
};

enum class DiffusionKind {
  Mlp,         // g = out_act(MLP(y[, t]))  (diagonal [d], scalar [d], general [d*m]; additive: MLP(t))
  ScaledTanh,  // g = sigmoid(s) * tanh(y) + offset, s a learned [d] vector (diagonal)
  Constant,    // g = s, a learned [d] vector (additive)
};

struct NeuralSdeSpec {
  int64_t d = 1;
  int64_t m = 0;  // Brownian dimension for general noise
  NoiseType noise = NoiseType::Diagonal;
  SdeType type = SdeType::Ito;
  MlpSpec drift;
  DiffusionKind diffusion_kind = DiffusionKind::ScaledTanh;
  MlpSpec diffusion;
  Activation diffusion_output = Activation::Sigmoid;  // output activation of the diffusion MLP
  double diffusion_offset = 0.0;
  double diffusion_init = 0.1;  // initial value of s (ScaledTanh, Constant)
  // Hand-written derivatives for increments and the adjoint's VJPs (with a ScaledTanh or
  // Constant diffusion); false: plain autograd (the reference they are tested against).
  bool fused = true;
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  uint64_t seed = 0;
};

class NeuralSDE : public SDE {
 public:
  explicit NeuralSDE(const NeuralSdeSpec& spec);
  at::Tensor drift(double t, const at::Tensor& y) override;
  at::Tensor diffusion(double t, const at::Tensor& y) override;
  at::Tensor increment(double t, const at::Tensor& y, double dt, const at::Tensor& dW) override;
  Vjp stratonovich_vjp(double t, const at::Tensor& y, const std::vector<VjpTerm>& terms, bool with_params) override;
  std::vector<int64_t> brownian_shape(const at::Tensor& y0) const override;
  std::vector<at::Tensor> parameters() const override;
  void check_state(const at::Tensor& y0) const override;

  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  // Copies values into the named parameter (shape checked).
  void set_parameter(const std::string& name, const at::Tensor& value);
  const NeuralSdeSpec& spec() const { return spec_; }

  // The hand-written route. A Pass holds what a point (t, y) gives every term evaluated there:
  // the drift MLP's output and layer caches, and for ScaledTanh sigmoid(s) and tanh(y).
  struct Pass {
    std::vector<at::Tensor> mlp;
    at::Tensor f, S, T;
  };
  Pass linearize(double t, const at::Tensor& y, bool with_drift) const;
  // Sets the pass's diffusion factors (ScaledTanh: sigmoid(s) and tanh(y)).
  void diffusion_factors(const at::Tensor& y, Pass& pass) const;
  // F = f dt (+ the Ito correction dt) + g dW at the pass's point, without a graph.
  at::Tensor fused_increment(const Pass& pass, std::optional<double> dt, const at::Tensor& dW, bool correction) const;
  // The terms' VJPs summed (grad_params in parameters() order, left alone when null).
  void fused_vjp(const Pass& pass, const std::vector<VjpTerm>& terms, bool correction, at::Tensor& grad_y,
                 std::vector<at::Tensor>* grad_params) const;

 private:
  bool fused() const { return spec_.fused && spec_.diffusion_kind != DiffusionKind::Mlp; }

  NeuralSdeSpec spec_;
  at::Generator gen_;
  Mlp drift_net_;
  std::unique_ptr<Mlp> diffusion_net_;
  at::Tensor s_;  // ScaledTanh / Constant
  // The leaf tensors in named_parameters() order, collected once: every solver step passes them.
  std::vector<at::Tensor> params_;
};

}  // namespace sde
