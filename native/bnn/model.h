// The SDE-BNN model: an optional deterministic stem, SDE blocks (each with its own weight SDE,
// hypernetwork and w_0), space-to-depth between stages, a head and a likelihood; one training
// step (Brownian paths, solves, ELBO, gradients by backprop or the stochastic adjoint, clipping,
// Adam, EMA) is one call. Independent of Node. The routes it runs are chosen in routes.h.
// config.model makes the blocks static-weight ODE blocks instead (block_sde.h), a resnet's with
// one weight slice per Euler step (its layers), the mfvi ones with a Gaussian q(w_0).
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bnn/config.h"
#include "bnn/dynamics.h"
#include "bnn/hypernet.h"
#include "bnn/optimizer.h"
#include "bnn/routes.h"

namespace bnn {

struct BlockRun;

// What a call's loss and gradients come to, whichever route computed them.
struct LossResult {
  double loss = 0, nll = 0, kl = 0, kl_w0 = 0;
  double accuracy = -1;  // categorical only; -1 otherwise
  int64_t nfe = 0, nfe_backward = 0, steps = 0;
  double t_end = 0;  // the time every block's forward solve reached (the minimum over blocks)
};

struct StepResult : LossResult {
  double grad_norm = 0;  // before clipping
};

struct GradientsResult {
  double loss = 0, nll = 0, kl = 0;
  NamedTensors grads;
};

struct BlockDiagnostics {
  double t_end = 0;
  int64_t steps = 0, nfe = 0;
  at::Tensor w0, w1;
  double kl = 0, kl_db = 0;
};

enum class Objective { Loss, Kl };

struct PredictOptions {
  int64_t samples = 1;
  bool use_ema = false;
  std::optional<uint64_t> seed;  // a private Brownian stream; none: the model's evaluation stream advances
  bool keep_samples = false;     // categorical: also return each path's probabilities
  // The zero-noise view: each block's weights follow the posterior drift's ODE path (the same
  // solver on a zero Brownian path) from the mean of q(w_0); nothing is drawn. Needs samples 1.
  bool deterministic = false;
};

struct Prediction {
  at::Tensor mean;  // categorical: class probabilities averaged over the paths [B, classes]
  at::Tensor
      samples;  // categorical with keep_samples: [samples, B, classes]; otherwise the outputs [samples, B, outputs]
};

class BnnModel {
 public:
  explicit BnnModel(const BnnConfig& config);
  ~BnnModel();

  const BnnConfig& config() const { return config_; }
  std::vector<int64_t> w_dims() const;
  int64_t num_parameters() const;
  std::vector<std::string> parameter_names() const;
  // The likelihood's current scale (Gaussian std or Laplace scale): learned or fixed.
  double likelihood_scale() const;
  // The route of calls with gradients (train_step, gradients) or without (predict, diagnose).
  ModelRoute route(bool gradients) const { return select_route(config_, gradients); }

  // x: [B, ...input_shape] (any float dtype, any device: moved to the model's);
  // y: class indices [B] (categorical) or targets [B, outputs].
  StepResult train_step(const at::Tensor& x, const at::Tensor& y, double lr, double beta);
  // Called by train_step with every parameter once the gradients exist (in .grad), before
  // clipping, Adam and the EMA: data-parallel training averages them across processes here. If it
  // throws, the step throws and the parameters are unchanged. Empty (the default): none.
  using GradientHook = std::function<void(const NamedTensors& params)>;
  void set_gradient_hook(GradientHook hook) { gradient_hook_ = std::move(hook); }

  // Gradients of the loss (or the KL alone) without an update; seed: a private Brownian stream.
  GradientsResult gradients(const at::Tensor& x, const at::Tensor& y, double beta, Objective objective,
                            std::optional<uint64_t> seed);
  // Monte Carlo prediction over o.samples weight paths (see Prediction).
  Prediction predict(const at::Tensor& x, const PredictOptions& o);
  std::vector<BlockDiagnostics> diagnose(const at::Tensor& x, std::optional<uint64_t> seed);

  // Parameters, Adam moments and step, EMA and the RNG states, by name (model_state.cpp).
  NamedTensors state() const;
  // Shape-checked before anything is written; strict: every tensor must be present.
  void set_state(const NamedTensors& state, bool strict);

 private:
  struct Block {
    std::shared_ptr<Dynamics> dynamics;
    std::shared_ptr<Hypernet> hypernet;  // null: static weights (every model but the SDE-BNN)
    at::Tensor mu, rho;
    std::vector<at::Tensor> hyper_params;
    int64_t stage = 0;
    sde::BufferPool pool;  // the buffered route's buffers, kept from step to step
    // config.cuda_graph: the weight path's grid increments [steps, w_dim] and q(w_0)'s standard
    // normals [w_dim], drawn on the device into the same memory before each step (graph_step.cpp)
    at::Tensor noise, eps;
  };
  struct Forward;
  struct GraphedStep;
  // The loss of a forward pass: `total` and `kl` with their graphs, and [loss, nll, kl, kl_w0,
  // accuracy (-1: not categorical)] in float64 on the device, read with one copy.
  struct LossTerms {
    at::Tensor total, kl, summary;
  };
  // ERR_NUMERICAL, before any update, when a step's loss is not finite.
  static void check_loss(const LossResult& o);

  // The forward pass, every block by `route`; with `gradients` differentiable (a training call).
  // deterministic: the zero-noise path from the mean of q(w_0), nothing drawn from gen (no gradients).
  // static_noise: each block's noise from its `noise` and `eps` (graph_step.cpp), nothing drawn from gen.
  Forward forward(const at::Tensor& x, at::Generator& gen, const ModelRoute& route, bool gradients,
                  std::vector<BlockDiagnostics>* diagnostics, bool deterministic = false, bool static_noise = false);
  // kl_weight: beta / nTrain, a scalar tensor on the model's device (a CUDA graph's input).
  LossTerms loss_terms(const Forward& f, const at::Tensor& target, const at::Tensor& kl_weight) const;
  // The LossResult of a summary read back (LossTerms::summary on the host).
  static LossResult read_summary(const at::Tensor& summary);
  // The loss and its gradients (left in the parameters' .grad) by the route of a gradient call.
  // check_finite: throw ERR_NUMERICAL, before any gradient, when the loss is not finite.
  LossResult loss_and_gradients(const at::Tensor& x, const at::Tensor& y, at::Generator& gen, double beta,
                                Objective objective, bool check_finite);
  // The direct route (direct.cpp): the buffered solves, the head (the last coordinates of h_1),
  // the likelihood and the KL term with their gradients by hand; no autograd graph. It draws from
  // `gen` exactly as forward() does.
  LossResult direct(const at::Tensor& x, const at::Tensor& y, at::Generator& gen, double beta, Objective objective,
                    bool check_finite);
  // config.cuda_graph's training step (graph_step.cpp): the first step at a batch size runs eagerly
  // and captures the forward and backward pass; later ones refill the noise and replay it.
  StepResult graphed_train_step(const at::Tensor& xin, const at::Tensor& target, double lr, double beta);
  void draw_static_noise(at::Generator& gen);
  at::Tensor nll(const at::Tensor& out, const at::Tensor& y) const;
  at::Tensor prepare_input(const at::Tensor& x) const;
  at::Tensor prepare_target(const at::Tensor& y, int64_t batch) const;
  void zero_grad();

  BnnConfig config_;
  at::TensorOptions options_;
  std::vector<std::unique_ptr<Block>> blocks_;
  at::Tensor stem_w_, stem_b_, head_w_, head_b_, log_scale_;
  NamedTensors params_;  // every trainable leaf, in state order
  std::unique_ptr<Optimizer> optimizer_;
  at::Generator train_gen_, eval_gen_;
  GradientHook gradient_hook_;
  std::unique_ptr<GraphedStep> graphed_;
  at::Generator noise_gen_;  // config.cuda_graph: the device's generator, reseeded per block and step
};

}  // namespace bnn
