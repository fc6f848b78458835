#include "bnn/model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>

#include "bnn/block_run.h"
#include "bnn/block_sde.h"
#include "bnn/conv_dynamics.h"
#include "bnn/mlp_dynamics.h"
#include "bnn/model_parts.h"
#include "sde/adjoint.h"
#include "sde/errors.h"
#include "sde/rng.h"

namespace bnn {

namespace {

at::Tensor space_to_depth(const at::Tensor& h) {
  const int64_t B = h.size(0), C = h.size(1), H = h.size(2), W = h.size(3);
  return h.reshape({B, C, H / 2, 2, W / 2, 2}).permute({0, 1, 3, 5, 2, 4}).reshape({B, C * 4, H / 2, W / 2});
}

// Restores parameter values on scope exit (prediction with the EMA).
struct Swap {
  std::vector<std::pair<at::Tensor, at::Tensor>> saved;  // (param, original value)
  ~Swap() {
    at::NoGradGuard no_grad;
    for (auto& [p, v] : saved) p.detach().copy_(v);
  }
};

}  // namespace

// ---- construction ----------------------------------------------------------------------------

BnnModel::BnnModel(const BnnConfig& config) : config_(config) {
  const BnnConfig& c = config_;
  options_ = at::TensorOptions().dtype(c.dtype).device(c.device);
  train_gen_ = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  eval_gen_ = at::make_generator<at::CPUGeneratorImpl>(sde::rng::splitmix64(c.seed ^ 0x5eed5eed5eed5eedULL));
  const auto cpu = at::TensorOptions().dtype(at::kDouble);
  auto leaf = [&](const at::Tensor& t) { return t.to(options_).detach().clone().requires_grad_(true); };
  auto uniform = [&](std::vector<int64_t> shape, int64_t fan_in) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return sde::fan_in_uniform(n, fan_in, train_gen_, cpu).view(shape);
  };
  const bool weight_sde = has_weight_sde(c.model);
  if (weight_sde && !(c.sigma > 0)) throw sde::invalid_argument("Expected a positive number for config.sigma");
  const bool mfvi = c.model == Model::MfviOdeNet || c.model == Model::MfviResNet;
  if (!weight_sde && c.w0_gaussian != mfvi) {
    throw sde::invalid_argument(std::string("Expected config.w0.posterior '") + (mfvi ? "gaussian" : "point") +
                                "' for this model");
  }
  if (is_resnet(c.model) &&
      (c.solver.method != sde::Method::Euler || c.solver.adaptive || c.solver.gradient != GradientRoute::Backprop)) {
    throw sde::invalid_argument("config.solver: a resnet's layers are fixed Euler steps differentiated by backprop");
  }
  if (c.solver.steps < 1) throw sde::invalid_argument("Expected positive integer for config.solver.steps");
  if (c.cuda_graph) {
    if (!c.device.is_cuda())
      throw sde::invalid_argument("config.cudaGraph records CUDA work but config.device is '" + c.device.str() + "'");
    const bool adjoint = c.solver.gradient == GradientRoute::Adjoint;
    if (c.solver.adaptive || c.solver.method == sde::Method::Srk ||
        (adjoint && (c.solver.adjoint_adaptive || c.solver.adjoint_steps != c.solver.steps))) {
      throw sde::invalid_argument(
          "config.cudaGraph needs fixed steps on one grid: solver.adaptive false, a method other than 'srk', and "
          "for the adjoint adjointAdaptive false and adjointSteps equal to steps");
    }
  }
  if (c.solver.max_steps < 1) throw sde::invalid_argument("Expected positive integer for config.solver.maxSteps");

  int64_t feature = 0;  // features entering the head
  if (c.kind == Kind::Conv) {
    if (c.input_shape.size() != 3) throw sde::invalid_argument("Expected config.inputShape [C, H, W] for kind 'conv'");
    int64_t C = c.input_shape[0], H = c.input_shape[1], W = c.input_shape[2];
    if (c.stem_channels > 0) {
      stem_w_ = leaf(uniform({c.stem_channels, C, 3, 3}, C * 9));
      stem_b_ = leaf(uniform({c.stem_channels}, C * 9));
      params_.emplace_back("stem.weight", stem_w_);
      params_.emplace_back("stem.bias", stem_b_);
      C = c.stem_channels;
      H = (H - 1) / 2 + 1;
      W = (W - 1) / 2 + 1;
    }
    C += c.aug;
    if (c.blocks.empty() || c.widths.size() != c.blocks.size()) {
      throw sde::invalid_argument("Expected config.widths to hold one width per stage of config.blocks");
    }
    for (size_t s = 0; s < c.blocks.size(); ++s) {
      if (s > 0) {
        if (H % 2 || W % 2) {
          throw sde::invalid_argument("config.blocks: stage " + std::to_string(s) +
                                      " needs even spatial sizes for space-to-depth but has " + std::to_string(H) +
                                      "x" + std::to_string(W));
        }
        C *= 4;
        H /= 2;
        W /= 2;
      }
      for (int64_t b = 0; b < c.blocks[s]; ++b) {
        auto block = std::make_unique<Block>();
        block->dynamics = std::make_shared<ConvDynamics>(C, H, W, c.widths[s], c.conv_activation);
        block->stage = static_cast<int64_t>(s);
        blocks_.push_back(std::move(block));
      }
    }
    if (c.pool > 0) {
      if (c.pool > H || c.pool > W) throw sde::invalid_argument("config.pool is larger than the final feature map");
      feature = C * (H / c.pool) * (W / c.pool);
    } else {
      feature = C;
    }
  } else {
    if (c.input_shape.size() != 1) throw sde::invalid_argument("Expected config.inputShape [D] for kind 'mlp'");
    const int64_t d = c.input_shape[0] + c.aug;
    for (int64_t b = 0; b < c.mlp_blocks; ++b) {
      auto block = std::make_unique<Block>();
      block->dynamics = std::make_shared<MlpDynamics>(d, c.hidden, c.activation, c.time_input);
      blocks_.push_back(std::move(block));
    }
    if (c.output_last && c.outputs > d) {
      throw sde::invalid_argument("config.outputs (" + std::to_string(c.outputs) + ") exceeds the hidden size " +
                                  std::to_string(d));
    }
    feature = c.output_last ? 0 : d;
  }
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    const std::string prefix = "blocks." + std::to_string(i) + ".";
    // a resnet's block holds its layers' weights one after the other, each initialised as a block's
    std::vector<at::Tensor> slices;
    for (int64_t k = 0; k < (weight_sde ? 1 : static_layers(c)); ++k)
      slices.push_back(b.dynamics->init_w0(c.w0_init, c.w0_std, train_gen_, cpu));
    b.mu = leaf(at::cat(slices));
    const int64_t wd = b.mu.numel();
    params_.emplace_back(prefix + "w0", b.mu);
    if (c.w0_gaussian) {
      b.rho = leaf(at::full({wd}, c.w0_rho_init, cpu));
      params_.emplace_back(prefix + "w0_rho", b.rho);
    }
    if (!weight_sde) continue;
    b.hypernet = std::make_shared<Hypernet>(wd, c.hyper_hidden, c.hyper_activation);
    std::vector<at::Tensor> hp = b.hypernet->init(train_gen_, cpu);
    for (size_t j = 0; j < hp.size(); ++j) {
      b.hyper_params.push_back(leaf(hp[j]));
      params_.emplace_back(prefix + "hypernet." + std::to_string(j / 2) + (j % 2 ? ".bias" : ".weight"),
                           b.hyper_params.back());
    }
  }
  if (feature > 0) {
    head_w_ = leaf(uniform({c.outputs, feature}, feature));
    head_b_ = leaf(uniform({c.outputs}, feature));
    params_.emplace_back("head.weight", head_w_);
    params_.emplace_back("head.bias", head_b_);
  }
  if (c.likelihood != Likelihood::Categorical && c.learn_scale) {
    log_scale_ = leaf(at::full({1}, std::log(c.scale), cpu));
    params_.emplace_back("likelihood.log_scale", log_scale_);
  }
  optimizer_ = std::make_unique<Optimizer>(params_, AdamConfig{c.adam_beta1, c.adam_beta2, c.adam_eps, c.clip, c.ema});

  // Method checks against a block SDE (the engine's own messages, prefixed with the field).
  BlockSDE probe(blocks_.front()->dynamics, blocks_.front()->hypernet, blocks_.front()->hyper_params, c.sigma,
                 weight_sde ? c.estimator : Estimator::Ckl, sde_type(c), 1, sde::Route::Fused, options_);
  try {
    sde::check_method(c.solver.method, probe);
    if (c.solver.gradient == GradientRoute::Adjoint)
      sde::check_adjoint_method(c.solver.method, c.solver.adjoint_method, probe);
  } catch (const sde::EngineError& e) {
    throw sde::invalid_argument(std::string("config.solver (estimator '") + to_string(c.estimator) + "'): " + e.what());
  }
  if (c.solver.adaptive && !sde::method_info(c.solver.method).adaptive) {
    throw sde::invalid_argument(std::string("config.solver: ") + sde::to_string(c.solver.method) +
                                " takes fixed steps only");
  }
}

BnnModel::~BnnModel() = default;

std::vector<int64_t> BnnModel::w_dims() const {
  std::vector<int64_t> out;
  for (const auto& b : blocks_) out.push_back(b->mu.numel());
  return out;
}

int64_t BnnModel::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, p] : params_) n += p.numel();
  return n;
}

std::vector<std::string> BnnModel::parameter_names() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : params_) out.push_back(name);
  return out;
}

double BnnModel::likelihood_scale() const {
  return log_scale_.defined() ? std::exp(log_scale_.detach().to(at::kDouble).item<double>()) : config_.scale;
}

// ---- forward ---------------------------------------------------------------------------------

at::Tensor BnnModel::prepare_input(const at::Tensor& x) const {
  std::vector<int64_t> expected{x.dim() > 0 ? x.size(0) : -1};
  expected.insert(expected.end(), config_.input_shape.begin(), config_.input_shape.end());
  if (x.sizes().vec() != expected || x.size(0) < 1) {
    throw sde::invalid_argument("Expected inputs of shape [batch, " + shape_string(config_.input_shape).substr(1) +
                                " but received " + shape_string(x.sizes()));
  }
  return x.to(options_).contiguous();
}

at::Tensor BnnModel::prepare_target(const at::Tensor& y, int64_t batch) const {
  if (config_.likelihood == Likelihood::Categorical) {
    if (y.numel() != batch) {
      throw sde::invalid_argument("Expected " + std::to_string(batch) + " class labels in targets but received " +
                                  std::to_string(y.numel()));
    }
    // checked where the labels are (the host, from JavaScript) before they move: no device read
    const at::Tensor labels = y.reshape({batch}).to(at::kLong);
    const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
    if (lo < 0 || hi >= config_.outputs) {
      throw sde::invalid_argument("Expected class labels in [0, " + std::to_string(config_.outputs - 1) +
                                  "] in targets");
    }
    return labels.to(options_.device());
  }
  if (y.numel() != batch * config_.outputs) {
    throw sde::invalid_argument("Expected " + std::to_string(batch * config_.outputs) + " target values but received " +
                                std::to_string(y.numel()));
  }
  return y.reshape({batch, config_.outputs}).to(options_);
}

BnnModel::Forward BnnModel::forward(const at::Tensor& x, at::Generator& gen, const ModelRoute& route, bool gradients,
                                    std::vector<BlockDiagnostics>* diagnostics, bool deterministic, bool static_noise) {
  if (deterministic && gradients) throw std::logic_error("BnnModel::forward: the deterministic path has no gradients");
  const BnnConfig& c = config_;
  Forward f;
  at::Tensor h = x;
  if (stem_w_.defined()) h = at::relu(at::conv2d(h, stem_w_, stem_b_, 2, 1));
  if (c.aug > 0) {
    std::vector<int64_t> pad = h.sizes().vec();
    pad[1] = c.aug;
    h = at::cat({h, at::zeros(pad, h.options())}, 1);
  }
  f.kl_path = at::zeros({}, options_);
  f.kl_w0 = at::zeros({}, options_);

  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    if (i > 0 && b.stage != blocks_[i - 1]->stage) h = space_to_depth(h);
    const int64_t wd = b.mu.numel();
    const uint64_t seed = deterministic || static_noise ? 0 : draw_seed(gen);
    at::Tensor w0 = b.mu;
    if (c.w0_gaussian && !deterministic) {
      const at::Tensor eps =
          static_noise ? b.eps : at::randn({wd}, gen, at::TensorOptions().dtype(at::kDouble)).to(options_);
      const at::Tensor s = at::exp(b.rho);
      w0 = b.mu + s * eps;
      const double p = c.w0_prior_std;
      f.kl_w0 = f.kl_w0 + (std::log(p) - b.rho + (s * s + b.mu * b.mu) / (2 * p * p) - 0.5).sum();
    }
    const auto run = start_run(c, route.solve, gradients, b.dynamics, b.hypernet, b.hyper_params, h.size(0), seed,
                               options_, b.pool, deterministic, static_noise ? b.noise : at::Tensor());
    const at::Tensor y1 =
        solve_block(run, run->sde->pack(h, w0), b.hyper_params, gradients && at::GradMode::is_enabled());
    h = run->sde->h_of(y1);
    f.kl_path = f.kl_path + run->sde->kl_of(y1);
    if (diagnostics) {
      const BlockLayout& L = run->sde->layout();
      BlockDiagnostics d;
      d.t_end = run->t_end;
      d.steps = run->forward.steps_accepted;
      d.nfe = run->forward.nfe;
      d.w0 = w0.detach().clone();
      d.w1 = run->sde->w_of(y1).detach().clone();
      d.kl = L.tail >= 1 ? y1[L.nh + L.w_dim].item<double>() : 0.0;
      d.kl_db = L.tail == 2 ? y1[L.nh + L.w_dim + 1].item<double>() : 0.0;
      diagnostics->push_back(std::move(d));
    }
    f.runs.push_back(run);
  }

  if (c.kind == Kind::Conv) {
    h = c.pool > 0 ? at::avg_pool2d(h, {c.pool, c.pool}) : h.mean(at::IntArrayRef{2, 3});
    f.out = at::linear(h.flatten(1), head_w_, head_b_);
  } else if (c.output_last) {
    f.out = h.narrow(1, h.size(1) - c.outputs, c.outputs);
  } else {
    f.out = at::linear(h, head_w_, head_b_);
  }
  return f;
}

at::Tensor BnnModel::nll(const at::Tensor& out, const at::Tensor& y) const {
  switch (config_.likelihood) {
    case Likelihood::Categorical: return at::nll_loss(at::log_softmax(out, 1), y);
    case Likelihood::Gaussian: {
      const at::Tensor log_s =
          log_scale_.defined() ? log_scale_ : at::full({1}, std::log(config_.scale), out.options());
      const at::Tensor r = (y - out) * at::exp(-log_s);
      return (0.5 * r * r + log_s + 0.5 * std::log(2 * 3.14159265358979323846)).sum(1).mean();
    }
    case Likelihood::Laplace: {
      const at::Tensor log_b =
          log_scale_.defined() ? log_scale_ : at::full({1}, std::log(config_.scale), out.options());
      return ((y - out).abs() * at::exp(-log_b) + log_b + std::log(2.0)).sum(1).mean();
    }
  }
  return at::Tensor();
}

// ---- loss, gradients and training -------------------------------------------------------------

void BnnModel::zero_grad() {
  graphed_.reset();  // a recorded step's .grad are its graph's memory
  for (auto& [name, p] : params_) p.mutable_grad() = at::Tensor();
}

LossResult BnnModel::loss_and_gradients(const at::Tensor& xin, const at::Tensor& target, at::Generator& gen,
                                        double beta, Objective objective, bool check_finite) {
  const ModelRoute plan = route(true);
  if (!plan.graph) return direct(xin, target, gen, beta, objective, check_finite);
  at::AutoGradMode enable(true);
  Forward f = forward(xin, gen, plan, true, nullptr);
  const LossTerms terms = loss_terms(f, target, at::full({}, beta / config_.n_train, options_));
  LossResult o = read_summary(terms.summary);
  if (check_finite) check_loss(o);
  torch::autograd::backward({objective == Objective::Kl ? terms.kl : terms.total});
  f.flush(blocks_);
  f.add_stats(o.nfe, o.nfe_backward, o.steps, o.t_end);
  return o;
}

void BnnModel::check_loss(const LossResult& o) {
  if (std::isfinite(o.loss)) return;
  throw sde::EngineError("ERR_NUMERICAL", "the loss is not finite (nll " + std::to_string(o.nll) + ", kl " +
                                              std::to_string(o.kl) + "); parameters unchanged");
}

BnnModel::LossTerms BnnModel::loss_terms(const Forward& f, const at::Tensor& target,
                                         const at::Tensor& kl_weight) const {
  LossTerms t;
  const at::Tensor nll_t = nll(f.out, target);
  t.kl = f.kl_path + f.kl_w0;
  t.total = nll_t + t.kl * kl_weight;
  const at::Tensor accuracy = config_.likelihood == Likelihood::Categorical
                                  ? (f.out.argmax(1) == target).to(at::kDouble).mean()
                                  : at::full({}, -1.0, f.out.options().dtype(at::kDouble));
  at::NoGradGuard no_grad;
  t.summary =
      at::stack({t.total.detach().to(at::kDouble).reshape({}), nll_t.detach().to(at::kDouble).reshape({}),
                 t.kl.detach().to(at::kDouble).reshape({}), f.kl_w0.detach().to(at::kDouble).reshape({}), accuracy});
  return t;
}

LossResult BnnModel::read_summary(const at::Tensor& summary) {
  const at::Tensor s = summary.to(at::kCPU);
  const double* v = s.data_ptr<double>();
  LossResult o;
  o.loss = v[0];
  o.nll = v[1];
  o.kl = v[2];
  o.kl_w0 = v[3];
  o.accuracy = v[4];
  return o;
}

StepResult BnnModel::train_step(const at::Tensor& x, const at::Tensor& y, double lr, double beta) {
  const at::Tensor xin = prepare_input(x);
  const at::Tensor target = prepare_target(y, xin.size(0));
  if (config_.cuda_graph) return graphed_train_step(xin, target, lr, beta);
  zero_grad();
  StepResult r;
  static_cast<LossResult&>(r) = loss_and_gradients(xin, target, train_gen_, beta, Objective::Loss, true);
  if (gradient_hook_) {
    at::NoGradGuard no_grad;
    gradient_hook_(params_);
  }
  r.grad_norm = optimizer_->step(lr);
  return r;
}

GradientsResult BnnModel::gradients(const at::Tensor& x, const at::Tensor& y, double beta, Objective objective,
                                    std::optional<uint64_t> seed) {
  const at::Tensor xin = prepare_input(x);
  const at::Tensor target = prepare_target(y, xin.size(0));
  zero_grad();
  at::Generator local = at::make_generator<at::CPUGeneratorImpl>(seed.value_or(0));
  const LossResult o = loss_and_gradients(xin, target, seed ? local : train_gen_, beta, objective, false);
  GradientsResult r;
  r.loss = o.loss;
  r.nll = o.nll;
  r.kl = o.kl;
  for (const auto& [name, p] : params_) {
    r.grads.emplace_back(name, p.grad().defined() ? p.grad().detach().clone() : at::zeros_like(p).detach());
  }
  zero_grad();
  return r;
}

// ---- prediction --------------------------------------------------------------------------------

Prediction BnnModel::predict(const at::Tensor& x, const PredictOptions& o) {
  if (o.samples < 1) throw sde::invalid_argument("Expected positive integer for samples");
  if (o.deterministic && o.samples != 1)
    throw sde::invalid_argument("Expected samples 1 with deterministic (its one path has no noise)");
  if (o.use_ema && !optimizer_->has_ema())
    throw sde::invalid_argument("options.ema: this model keeps no EMA (config.optimizer.ema is 0)");
  at::NoGradGuard no_grad;
  const at::Tensor xin = prepare_input(x);
  at::Generator local = at::make_generator<at::CPUGeneratorImpl>(o.seed.value_or(0));
  at::Generator& gen = o.seed ? local : eval_gen_;
  Swap swap;
  if (o.use_ema) {
    for (size_t i = 0; i < params_.size(); ++i) {
      swap.saved.emplace_back(params_[i].second, params_[i].second.detach().clone());
      params_[i].second.detach().copy_(optimizer_->ema()[i].second);
    }
  }
  const bool categorical = config_.likelihood == Likelihood::Categorical;
  std::vector<at::Tensor> outs;
  Prediction r;
  for (int64_t s = 0; s < o.samples; ++s) {
    Forward f = forward(xin, gen, route(false), false, nullptr, o.deterministic);
    if (categorical) {
      at::Tensor p = at::softmax(f.out, 1);
      r.mean = r.mean.defined() ? r.mean + p : p;
      if (o.keep_samples) outs.push_back(p);
    } else {
      outs.push_back(f.out);
    }
  }
  if (categorical) r.mean = r.mean / static_cast<double>(o.samples);
  if (!outs.empty()) r.samples = at::stack(outs);
  // the blocks' solves leave this check to the caller (StepOptions::check_finite): one read here
  if (!at::isfinite(categorical ? r.mean : r.samples).all().item<bool>()) {
    throw sde::EngineError("ERR_NUMERICAL",
                           "the prediction is not finite; the model's weights or inputs may have overflowed");
  }
  return r;
}

std::vector<BlockDiagnostics> BnnModel::diagnose(const at::Tensor& x, std::optional<uint64_t> seed) {
  at::NoGradGuard no_grad;
  const at::Tensor xin = prepare_input(x);
  at::Generator local = at::make_generator<at::CPUGeneratorImpl>(seed.value_or(0));
  at::Generator& gen = seed ? local : eval_gen_;
  std::vector<BlockDiagnostics> out;
  forward(xin, gen, route(false), false, &out);
  return out;
}

}  // namespace bnn
