// Neural SDEs from a declarative spec: drift and diffusion networks whose parameters are
// leaf tensors (readable and writable by name), never JavaScript callbacks per step.
#pragma once
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sde/activations.h"
#include "sde/buffered.h"
#include "sde/mlp.h"
#include "sde/routes.h"
#include "sde/sde.h"

namespace sde {

struct MlpSpec {
  std::vector<int64_t> hidden;  // hidden widths; input and output widths follow from the SDE
  Activation activation = Activation::Tanh;
  bool time_input = false;  // append t to the input
};

// An MLP (sde/mlp.h) over its own leaf parameters, named prefix.<layer>.weight and .bias.
struct NamedMlp {
  // in -> spec.hidden -> out, t appended to the input with spec.time_input; PyTorch's Linear init.
  NamedMlp(int64_t in, int64_t out, const MlpSpec& spec, const at::TensorOptions& options, std::string prefix,
           at::Generator& gen);
  const MlpWeights& weights() const { return weights_; }
  void collect(std::vector<std::pair<std::string, at::Tensor>>& named) const;

  MlpShape shape;
  std::vector<at::Tensor> params;  // [W_0, b_0, W_1, b_1, ...]
  std::string prefix;

 private:
  MlpWeights weights_;  // params as the ATen backend takes them
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
  // The routes asked for (routes.h). With a ScaledTanh or Constant diffusion the drift and
  // diffusion have hand-written derivatives and a buffered system; otherwise autograd only.
  Kernels kernels = Kernels::Fast;
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  uint64_t seed = 0;
};

// Made by std::make_shared (its autograd nodes share its ownership).
class NeuralSDE : public SDE, public std::enable_shared_from_this<NeuralSDE> {
 public:
  explicit NeuralSDE(const NeuralSdeSpec& spec);
  at::Tensor drift(double t, const at::Tensor& y) override;
  at::Tensor diffusion(double t, const at::Tensor& y) override;
  at::Tensor increment(double t, const at::Tensor& y, double dt, const at::Tensor& dW) override;
  Vjp stratonovich_vjp(double t, const at::Tensor& y, const std::vector<VjpTerm>& terms, bool with_params) override;
  std::vector<int64_t> brownian_shape(const at::Tensor& y0) const override;
  std::vector<at::Tensor> parameters() const override;
  void check_state(const at::Tensor& y0) const override;
  RouteOffer route_offer() const override;
  std::unique_ptr<BufferedSolve> buffered_solve(const at::Tensor& y0, BrownianMotion& bm, BufferedMode mode,
                                                const std::vector<double>& ts, const StepOptions& options,
                                                const StepOptions& adjoint_options) override;

  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  // Copies values into the named parameter (shape checked).
  void set_parameter(const std::string& name, const at::Tensor& value);
  const NeuralSdeSpec& spec() const { return spec_; }
  const NamedMlp& drift_net() const { return drift_net_; }
  const at::Tensor& diffusion_s() const { return s_; }  // ScaledTanh / Constant

  // The hand-written route. A Pass holds what a point (t, y) gives every term evaluated there:
  // the drift MLP's output and its pass (the raw kernel's, or the ATen backend's layer caches),
  // and for ScaledTanh sigmoid(s) and tanh(y). `pooled`: its results may come from the shared
  // pool (never for an autograd node's, which would mark the pool's tensor as a node's output).
  struct Pass {
    std::optional<MlpRawPass> raw;
    MlpCache mlp;
    at::Tensor f, S, T;
    bool pooled = false;
  };
  // The drift MLP runs on the raw kernel where it applies. `kept`: the pass is kept in an autograd
  // graph (IncrementFn), so it keeps the ATen backend's caches, not the raw kernel's pooled buffers.
  Pass linearize(double t, const at::Tensor& y, bool with_drift, bool kept) const;
  // Sets the pass's diffusion factors (ScaledTanh: sigmoid(s) and tanh(y)).
  void diffusion_factors(const at::Tensor& y, Pass& pass) const;
  // F = f dt (+ the Ito correction dt) + g dW at the pass's point, without a graph.
  at::Tensor fused_increment(const Pass& pass, std::optional<double> dt, const at::Tensor& dW, bool correction) const;
  // The terms' VJPs summed (grad_params in parameters() order, left alone when null).
  void fused_vjp(const Pass& pass, const std::vector<VjpTerm>& terms, bool correction, at::Tensor& grad_y,
                 std::vector<at::Tensor>* grad_params) const;

 private:
  bool hand_written() const { return spec_.diffusion_kind != DiffusionKind::Mlp; }
  bool fused() const { return spec_.kernels != Kernels::Autograd && hand_written(); }

  NeuralSdeSpec spec_;
  at::Generator gen_;
  NamedMlp drift_net_;
  std::unique_ptr<NamedMlp> diffusion_net_;
  at::Tensor s_;  // ScaledTanh / Constant
  // The leaf tensors in named_parameters() order, collected once: every solver step passes them.
  std::vector<at::Tensor> params_;
};

}  // namespace sde
