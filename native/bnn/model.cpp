#include "bnn/model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#if defined(__x86_64__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#include "bnn/block_sde.h"
#include "bnn/block_system.h"
#include "bnn/conv_dynamics.h"
#include "bnn/mlp_dynamics.h"
#include "sde/adjoint.h"
#include "sde/brownian.h"
#include "sde/errors.h"
#include "sde/rng.h"

namespace bnn {

// ---- parsing ---------------------------------------------------------------------------------

Kind parse_kind(const std::string& name) {
  if (name == "mlp") return Kind::Mlp;
  if (name == "conv") return Kind::Conv;
  throw sde::invalid_argument("Expected 'mlp' or 'conv' for config.kind but received '" + name + "'");
}
Estimator parse_estimator(const std::string& name) {
  if (name == "ckl") return Estimator::Ckl;
  if (name == "fmc") return Estimator::Fmc;
  if (name == "stl") return Estimator::Stl;
  throw sde::invalid_argument("Expected 'ckl', 'fmc' or 'stl' for config.estimator but received '" + name + "'");
}
Likelihood parse_likelihood(const std::string& name) {
  if (name == "categorical") return Likelihood::Categorical;
  if (name == "gaussian") return Likelihood::Gaussian;
  if (name == "laplace") return Likelihood::Laplace;
  throw sde::invalid_argument("Expected 'categorical', 'gaussian' or 'laplace' for config.likelihood but received '" + name + "'");
}
GradientRoute parse_gradient_route(const std::string& name) {
  if (name == "backprop") return GradientRoute::Backprop;
  if (name == "adjoint") return GradientRoute::Adjoint;
  throw sde::invalid_argument("Expected 'backprop' or 'adjoint' for config.solver.gradient but received '" + name + "'");
}
W0Init parse_w0_init(const std::string& name) {
  if (name == "normal") return W0Init::Normal;
  if (name == "fanIn") return W0Init::FanIn;
  throw sde::invalid_argument("Expected 'normal' or 'fanIn' for config.w0.init but received '" + name + "'");
}
const char* to_string(Estimator e) {
  switch (e) {
    case Estimator::Ckl: return "ckl";
    case Estimator::Fmc: return "fmc";
    case Estimator::Stl: return "stl";
  }
  return "?";
}

namespace {


uint64_t draw_seed(at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

bool is_ito_method(sde::Method m) {
  return m == sde::Method::Euler || m == sde::Method::Milstein || m == sde::Method::Srk;
}

at::Tensor space_to_depth(const at::Tensor& h) {
  const int64_t B = h.size(0), C = h.size(1), H = h.size(2), W = h.size(3);
  return h.reshape({B, C, H / 2, 2, W / 2, 2}).permute({0, 1, 3, 5, 2, 4}).reshape({B, C * 4, H / 2, W / 2});
}

// A block's solve in progress: the SDE, its Brownian path and the statistics. Lives until the
// step's backward pass has finished.
struct BlockRun {
  std::unique_ptr<BlockSDE> sde;
  std::unique_ptr<sde::BrownianMotion> bm;
  sde::StepOptions options, adjoint_options;
  sde::SolveStats forward, backward;
  double t_end = 0;
  GradBank bank;  // backprop: the hypernetwork's weight gradients, flushed after backward
  std::unique_ptr<sde::BufferedSolve> buffered;  // the buffered route, when it applies

  // The buffered solve from y(0): y(1).
  at::Tensor solve_buffered(const at::Tensor& y0) {
    const at::Tensor ys = buffered->solve(y0);
    forward = buffered->forward_stats;
    t_end = 1.0;
    return ys[1];
  }
  // Its gradients from dL/dy(1): dL/dy(0) and the hypernetwork's.
  std::pair<at::Tensor, std::vector<at::Tensor>> buffered_gradients(const at::Tensor& g1) {
    const at::Tensor grad_ys = at::zeros({2, g1.numel()}, g1.options());
    grad_ys[1].copy_(g1);
    auto result = buffered->gradients(grad_ys);
    backward = buffered->backward_stats;
    return result;
  }
};

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One block solved forward without a graph; its backward is the engine's stochastic adjoint on
// the same Brownian path, started from dL/dy(1).
struct AdjointSolveFn : public torch::autograd::Function<AdjointSolveFn> {
  static at::Tensor forward(AutogradContext* ctx, BlockRun* run, const at::Tensor& y0, at::TensorList params) {
    (void)params;
    sde::Solution s = sde::sdeint(*run->sde, y0, {0.0, 1.0}, *run->bm, run->options,
                                  [run](double t, const sde::SolveStats&) { run->t_end = t; });
    run->forward = s.stats;
    ctx->saved_data["run"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(run));
    ctx->save_for_backward({y0});
    return s.ys.select(0, 1).clone();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* run = reinterpret_cast<BlockRun*>(static_cast<intptr_t>(ctx->saved_data["run"].toInt()));
    const at::Tensor y0 = ctx->get_saved_variables()[0];
    const at::Tensor g1 = grads[0].defined() ? grads[0] : at::zeros_like(y0);
    const at::Tensor grad_ys = at::stack({at::zeros_like(g1), g1});
    sde::GradientResult r = sde::adjoint_gradients(*run->sde, y0, {0.0, 1.0}, *run->bm, run->options,
                                                   run->adjoint_options, grad_ys);
    run->backward = r.backward;
    run->backward.nfe += r.forward.nfe;  // the engine's adjoint solves forward once more
    variable_list out{at::Tensor(), r.grad_y0};
    out.insert(out.end(), r.grad_params.begin(), r.grad_params.end());
    return out;
  }
};

// One block solved by the dedicated fixed-step path as a single autograd node: its backward is
// the path's own reverse sweep (backprop or the stochastic adjoint, by the solver's mode).
struct FastSolveFn : public torch::autograd::Function<FastSolveFn> {
  static at::Tensor forward(AutogradContext* ctx, BlockRun* run, const at::Tensor& y0, at::TensorList params) {
    (void)params;
    at::Tensor y1 = run->solve_buffered(y0);
    ctx->saved_data["run"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(run));
    return y1;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* run = reinterpret_cast<BlockRun*>(static_cast<intptr_t>(ctx->saved_data["run"].toInt()));
    const at::Tensor g1 = grads[0].defined() ? grads[0] : at::zeros({run->sde->layout().size()}, run->sde->parameters().front().options());
    auto [grad_y0, grad_params] = run->buffered_gradients(g1);
    variable_list out{at::Tensor(), grad_y0};
    out.insert(out.end(), grad_params.begin(), grad_params.end());
    return out;
  }
};

// Whether the buffered route computes exactly what the generic route would for `config` in `mode`:
// CPU, float32/float64, fixed-step Euler; the adjoint with a fixed-step Euler adjoint and the ckl
// estimator (the only Euler adjoint the engine accepts: fmc/stl make the noise general).
bool buffered_supported(const BnnConfig& c, sde::BufferedMode mode) {
  if (!c.fast || !c.fused) return false;
  if (!c.device.is_cpu()) return false;  // the raw loops read host memory; accelerators take the generic route
  if (c.dtype != c10::kFloat && c.dtype != c10::kDouble) return false;
  if (c.solver.method != sde::Method::Euler || c.solver.adaptive) return false;
  if (mode == sde::BufferedMode::Adjoint) {
    if (c.solver.adjoint_method != sde::Method::Euler || c.solver.adjoint_adaptive) return false;
    if (c.estimator != Estimator::Ckl) return false;
  }
  return true;
}

// The solver options of every block's solve (forward and adjoint) and the SDE type.
struct SolveSetup {
  sde::StepOptions options, adjoint_options;
  sde::SdeType type = sde::SdeType::Ito;
};

SolveSetup solve_setup(const BnnConfig& c) {
  SolveSetup s;
  s.options.method = c.solver.method;
  s.options.dt = 1.0 / static_cast<double>(c.solver.steps);
  s.options.adaptive = c.solver.adaptive;
  s.options.rtol = c.solver.rtol;
  s.options.atol = c.solver.atol;
  s.options.dt_min = c.solver.dt_min;
  s.adjoint_options = s.options;
  s.adjoint_options.method = c.solver.adjoint_method;
  s.adjoint_options.dt = 1.0 / static_cast<double>(c.solver.adjoint_steps);
  s.adjoint_options.adaptive = c.solver.adjoint_adaptive;
  s.type = is_ito_method(c.solver.method) ? sde::SdeType::Ito : sde::SdeType::Stratonovich;
  return s;
}

// A block's run: its SDE on a batch of `batch` and its Brownian path (from `seed`).
std::unique_ptr<BlockRun> start_run(const BnnConfig& c, const SolveSetup& s, const std::shared_ptr<Dynamics>& dynamics,
                                    const std::shared_ptr<Hypernet>& hypernet, const std::vector<at::Tensor>& hyper_params,
                                    int64_t batch, uint64_t seed, const at::TensorOptions& options) {
  auto run = std::make_unique<BlockRun>();
  run->sde = std::make_unique<BlockSDE>(dynamics, hypernet, hyper_params, c.sigma, c.estimator, s.type, batch, c.fused);
  sde::BrownianIntervalOptions bo;
  bo.t0 = 0.0;
  bo.t1 = 1.0;
  bo.shape = {dynamics->w_dim()};
  bo.options = options;
  bo.seed = seed;
  bo.dt_hint = s.options.dt;
  bo.levy_area = c.solver.method == sde::Method::Srk;
  run->bm = sde::make_brownian_interval(bo);
  run->options = s.options;
  run->adjoint_options = s.adjoint_options;
  return run;
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

struct BnnModel::Block {
  std::shared_ptr<Dynamics> dynamics;
  std::shared_ptr<Hypernet> hypernet;
  at::Tensor mu, rho;
  std::vector<at::Tensor> hyper_params;
  int64_t stage = 0;
  sde::BufferPool pool;  // the buffered route's buffers, kept from step to step
};

struct BnnModel::Forward {
  std::vector<std::unique_ptr<BlockRun>> runs;  // declared first: destroyed after the graph
  at::Tensor out, kl_path, kl_w0;
  // After backward: the banked hypernetwork gradients into the parameters' .grad.
  void flush(const std::vector<std::unique_ptr<Block>>& blocks) {
    for (size_t i = 0; i < runs.size(); ++i) runs[i]->bank.flush(blocks[i]->hyper_params);
  }
  int64_t nfe() const {
    int64_t n = 0;
    for (const auto& r : runs) n += r->forward.nfe;
    return n;
  }
  int64_t nfe_backward() const {
    int64_t n = 0;
    for (const auto& r : runs) n += r->backward.nfe;
    return n;
  }
  int64_t steps() const {
    int64_t n = 0;
    for (const auto& r : runs) n += r->forward.steps_accepted;
    return n;
  }
  double t_end() const {
    double t = runs.empty() ? 0.0 : 1e300;
    for (const auto& r : runs) t = std::min(t, r->t_end);
    return t;
  }
};

// ---- construction ----------------------------------------------------------------------------

BnnModel::BnnModel(const BnnConfig& config) : config_(config) {
  const BnnConfig& c = config_;
  options_ = at::TensorOptions().dtype(c.dtype).device(c.device);
  train_gen_ = at::make_generator<at::CPUGeneratorImpl>(c.seed);
  eval_gen_ = at::make_generator<at::CPUGeneratorImpl>(sde::rng::splitmix64(c.seed ^ 0x5eed5eed5eed5eedULL));
  const auto cpu = at::TensorOptions().dtype(at::kDouble);
  auto leaf = [&](const at::Tensor& t) { return t.to(options_).detach().clone().requires_grad_(true); };
  auto uniform = [&](std::vector<int64_t> shape, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return at::empty(shape, cpu).uniform_(-bound, bound, train_gen_);
  };
  if (!(c.sigma > 0)) throw sde::invalid_argument("Expected a positive number for config.sigma");
  if (c.solver.steps < 1) throw sde::invalid_argument("Expected positive integer for config.solver.steps");

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
          throw sde::invalid_argument("config.blocks: stage " + std::to_string(s) + " needs even spatial sizes for space-to-depth but has " +
                                      std::to_string(H) + "x" + std::to_string(W));
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
      throw sde::invalid_argument("config.outputs (" + std::to_string(c.outputs) + ") exceeds the hidden size " + std::to_string(d));
    }
    feature = c.output_last ? 0 : d;
  }
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    const std::string prefix = "blocks." + std::to_string(i) + ".";
    const int64_t wd = b.dynamics->w_dim();
    b.mu = leaf(b.dynamics->init_w0(c.w0_init, c.w0_std, train_gen_, cpu));
    params_.emplace_back(prefix + "w0", b.mu);
    if (c.w0_gaussian) {
      b.rho = leaf(at::full({wd}, c.w0_rho_init, cpu));
      params_.emplace_back(prefix + "w0_rho", b.rho);
    }
    b.hypernet = std::make_shared<Hypernet>(wd, c.hyper_hidden, c.hyper_activation);
    std::vector<at::Tensor> hp = b.hypernet->init(train_gen_, cpu);
    for (size_t j = 0; j < hp.size(); ++j) {
      b.hyper_params.push_back(leaf(hp[j]));
      params_.emplace_back(prefix + "hypernet." + std::to_string(j / 2) + (j % 2 ? ".bias" : ".weight"), b.hyper_params.back());
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
  for (const auto& [name, p] : params_) {
    adam_m_.emplace_back(name, at::zeros_like(p).detach());
    adam_v_.emplace_back(name, at::zeros_like(p).detach());
    if (c.ema > 0) ema_.emplace_back(name, p.detach().clone());
  }

  // Method checks against a block SDE (the engine's own messages, prefixed with the field).
  const sde::SdeType type = is_ito_method(c.solver.method) ? sde::SdeType::Ito : sde::SdeType::Stratonovich;
  BlockSDE probe(blocks_.front()->dynamics, blocks_.front()->hypernet, blocks_.front()->hyper_params, c.sigma, c.estimator,
                 type, 1, true);
  try {
    sde::check_method(c.solver.method, probe);
    if (c.solver.gradient == GradientRoute::Adjoint) sde::check_adjoint_method(c.solver.method, c.solver.adjoint_method, probe);
  } catch (const sde::EngineError& e) {
    throw sde::invalid_argument(std::string("config.solver (estimator '") + to_string(c.estimator) + "'): " + e.what());
  }
  if (c.solver.adaptive && c.solver.method == sde::Method::ReversibleHeun) {
    throw sde::invalid_argument("config.solver: reversible_heun takes fixed steps only");
  }
}

BnnModel::~BnnModel() = default;

std::vector<int64_t> BnnModel::w_dims() const {
  std::vector<int64_t> out;
  for (const auto& b : blocks_) out.push_back(b->dynamics->w_dim());
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

NamedTensors BnnModel::named_parameters() const { return params_; }

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
      throw sde::invalid_argument("Expected " + std::to_string(batch) + " class labels in targets but received " + std::to_string(y.numel()));
    }
    at::Tensor labels = y.reshape({batch}).to(options_.dtype(at::kLong));
    const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
    if (lo < 0 || hi >= config_.outputs) {
      throw sde::invalid_argument("Expected class labels in [0, " + std::to_string(config_.outputs - 1) + "] in targets");
    }
    return labels;
  }
  if (y.numel() != batch * config_.outputs) {
    throw sde::invalid_argument("Expected " + std::to_string(batch * config_.outputs) + " target values but received " +
                                std::to_string(y.numel()));
  }
  return y.reshape({batch, config_.outputs}).to(options_);
}

BnnModel::Forward BnnModel::forward(const at::Tensor& x, at::Generator& gen, Route route,
                                    std::vector<BlockDiagnostics>* diagnostics) {
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

  const SolveSetup setup = solve_setup(c);
  const sde::StepOptions& options = setup.options;
  const sde::StepOptions& adjoint_options = setup.adjoint_options;
  const bool fused = c.fused;

  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    if (i > 0 && b.stage != blocks_[i - 1]->stage) h = space_to_depth(h);
    const int64_t wd = b.dynamics->w_dim();
    const uint64_t seed = draw_seed(gen);
    at::Tensor w0 = b.mu;
    if (c.w0_gaussian) {
      const at::Tensor eps = at::randn({wd}, gen, at::TensorOptions().dtype(at::kDouble)).to(options_);
      const at::Tensor s = at::exp(b.rho);
      w0 = b.mu + s * eps;
      const double p = c.w0_prior_std;
      f.kl_w0 = f.kl_w0 + (std::log(p) - b.rho + (s * s + b.mu * b.mu) / (2 * p * p) - 0.5).sum();
    }
    auto run = start_run(c, setup, b.dynamics, b.hypernet, b.hyper_params, h.size(0), seed, options_);
    const sde::BufferedMode fast_mode = route == Route::Adjoint    ? sde::BufferedMode::Adjoint
                                        : route == Route::Backprop ? sde::BufferedMode::Backprop
                                                                   : sde::BufferedMode::Forward;
    const bool fast = buffered_supported(c, fast_mode);
    if (route == Route::Backprop && fused && !fast) run->sde->set_bank(&run->bank);
    const at::Tensor y0 = run->sde->pack(h, w0);
    at::Tensor y1;
    if (fast) {
      run->buffered = make_block_solve(*run->sde, *run->bm, fast_mode, options.dt, adjoint_options.dt, b.pool);
      if (route != Route::None && at::GradMode::is_enabled()) {
        y1 = FastSolveFn::apply(run.get(), y0, at::TensorList(b.hyper_params));
      } else {
        y1 = run->solve_buffered(y0);
      }
    } else if (route == Route::Adjoint) {
      y1 = AdjointSolveFn::apply(run.get(), y0, at::TensorList(b.hyper_params));
    } else {
      BlockRun* r = run.get();
      sde::Solution s = sde::sdeint(*run->sde, y0, {0.0, 1.0}, *run->bm, options,
                                    [r](double t, const sde::SolveStats&) { r->t_end = t; });
      run->forward = s.stats;
      y1 = s.ys.select(0, 1);
    }
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
      d.kl = y1[L.nh + L.w_dim].item<double>();
      d.kl_db = L.tail == 2 ? y1[L.nh + L.w_dim + 1].item<double>() : 0.0;
      diagnostics->push_back(std::move(d));
    }
    f.runs.push_back(std::move(run));
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
    case Likelihood::Categorical:
      return at::nll_loss(at::log_softmax(out, 1), y);
    case Likelihood::Gaussian: {
      const at::Tensor log_s = log_scale_.defined() ? log_scale_ : at::full({1}, std::log(config_.scale), out.options());
      const at::Tensor r = (y - out) * at::exp(-log_s);
      return (0.5 * r * r + log_s + 0.5 * std::log(2 * 3.14159265358979323846)).sum(1).mean();
    }
    case Likelihood::Laplace: {
      const at::Tensor log_b = log_scale_.defined() ? log_scale_ : at::full({1}, std::log(config_.scale), out.options());
      return ((y - out).abs() * at::exp(-log_b) + log_b + std::log(2.0)).sum(1).mean();
    }
  }
  return at::Tensor();
}

BnnModel::Loss BnnModel::loss_of(const Forward& f, const at::Tensor& target, double beta) const {
  Loss loss;
  loss.nll = nll(f.out, target);
  loss.kl = f.kl_path + f.kl_w0;
  loss.total = loss.nll + loss.kl * (beta / config_.n_train);
  return loss;
}

// ---- the direct route ----------------------------------------------------------------------------

bool BnnModel::direct_applies(Route route) const {
  const BnnConfig& c = config_;
  if (route == Route::None) return false;
  if (c.kind != Kind::Mlp || !c.output_last || c.w0_gaussian || log_scale_.defined() || head_w_.defined()) return false;
  if (c.likelihood != Likelihood::Gaussian && c.likelihood != Likelihood::Laplace) return false;
  return buffered_supported(c, route == Route::Adjoint ? sde::BufferedMode::Adjoint : sde::BufferedMode::Backprop);
}

namespace {

// The KL entries of a block state (kl and kl_dB), summed in double.
template <typename T>
double kl_sum(const at::Tensor& y1, const BlockLayout& L) {
  const T* p = y1.data_ptr<T>() + L.nh + L.w_dim;
  double s = 0;
  for (int64_t j = 0; j < L.tail; ++j) s += static_cast<double>(p[j]);
  return s;
}

// The Gaussian or Laplace NLL of the head out[i, k] = h[i, d - outputs + k] (h [batch, d] row-major)
// as nll() computes it (the mean over the batch of the sum over outputs), in double; with `grad`
// ([batch * d], zero elsewhere), its gradient times `coef` is added at the head's coordinates:
// Gaussian (out - y) / s^2 / batch, Laplace sign(out - y) / b / batch (sign(0) = 0, as abs's).
template <typename T>
double head_nll(Likelihood lik, double scale, const T* h, int64_t batch, int64_t d, int64_t outputs, const T* y, double coef,
                T* grad) {
  const double log_s = std::log(scale);
  const double half_log_2pi = 0.5 * std::log(2 * 3.14159265358979323846);
  double sum = 0;
  for (int64_t i = 0; i < batch; ++i) {
    for (int64_t k = 0; k < outputs; ++k) {
      const int64_t at = i * d + d - outputs + k;
      const double o = static_cast<double>(h[at]), t = static_cast<double>(y[i * outputs + k]);
      if (lik == Likelihood::Gaussian) {
        const double r = (t - o) / scale;
        sum += 0.5 * r * r + log_s + half_log_2pi;
        if (grad) grad[at] += static_cast<T>(coef * (o - t) / (scale * scale * batch));
      } else {
        sum += std::fabs(t - o) / scale + log_s + std::log(2.0);
        if (grad) grad[at] += static_cast<T>(coef * ((o > t) - (o < t)) / (scale * batch));
      }
    }
  }
  return sum / static_cast<double>(batch);
}

}  // namespace

BnnModel::Direct BnnModel::direct(const at::Tensor& xin, const at::Tensor& target, at::Generator& gen, Route route, double beta,
                                  Objective objective, bool check_finite) {
  at::NoGradGuard no_grad;
  const BnnConfig& c = config_;
  const bool is_double = options_.dtype().toScalarType() == at::kDouble;
  const SolveSetup setup = solve_setup(c);
  const sde::BufferedMode mode = route == Route::Adjoint ? sde::BufferedMode::Adjoint : sde::BufferedMode::Backprop;
  const int64_t batch = xin.size(0);
  at::Tensor h = xin;
  if (c.aug > 0) h = at::cat({h, at::zeros({batch, c.aug}, h.options())}, 1);
  std::vector<std::unique_ptr<BlockRun>> runs;
  Direct r;
  r.t_end = 1e300;
  at::Tensor y1;
  for (auto& block : blocks_) {
    Block& b = *block;
    const uint64_t seed = draw_seed(gen);  // as forward(): one seed per block, nothing else drawn
    auto run = start_run(c, setup, b.dynamics, b.hypernet, b.hyper_params, batch, seed, options_);
    const at::Tensor y0 = run->sde->pack(h, b.mu.detach());
    run->buffered = make_block_solve(*run->sde, *run->bm, mode, setup.options.dt, setup.adjoint_options.dt, b.pool);
    y1 = run->solve_buffered(y0);
    h = run->sde->h_of(y1);
    const BlockLayout& L = run->sde->layout();
    r.kl += is_double ? kl_sum<double>(y1, L) : kl_sum<float>(y1, L);
    r.nfe += run->forward.nfe;
    r.steps += run->forward.steps_accepted;
    r.t_end = std::min(r.t_end, run->t_end);
    runs.push_back(std::move(run));
  }
  const int64_t d = h.size(1);
  const bool kl_only = objective == Objective::Kl;
  const double c_kl = kl_only ? 1.0 : beta / c.n_train;
  // dL/dy(1) of the last block: the head's coordinates and the KL entries
  const BlockLayout& last = runs.back()->sde->layout();
  at::Tensor g1 = at::zeros({last.size()}, options_);
  const at::Tensor y_head = target.contiguous();
  if (is_double) {
    r.nll = head_nll<double>(c.likelihood, c.scale, y1.data_ptr<double>(), batch, d, c.outputs, y_head.data_ptr<double>(),
                             kl_only ? 0.0 : 1.0, kl_only ? nullptr : g1.data_ptr<double>());
  } else {
    r.nll = head_nll<float>(c.likelihood, c.scale, y1.data_ptr<float>(), batch, d, c.outputs, y_head.data_ptr<float>(),
                            kl_only ? 0.0 : 1.0, kl_only ? nullptr : g1.data_ptr<float>());
  }
  r.loss = r.nll + r.kl * (beta / c.n_train);
  if (check_finite && !std::isfinite(r.loss)) {
    throw sde::EngineError("ERR_NUMERICAL", "the loss is not finite (nll " + std::to_string(r.nll) + ", kl " +
                                                std::to_string(r.kl) + "); parameters unchanged");
  }
  for (size_t i = runs.size(); i-- > 0;) {
    BlockRun& run = *runs[i];
    Block& b = *blocks_[i];
    const BlockLayout& L = run.sde->layout();
    g1.narrow(0, L.nh + L.w_dim, L.tail).fill_(c_kl);
    auto [grad_y0, grad_params] = run.buffered_gradients(g1);
    r.nfe_backward += run.backward.nfe;
    for (size_t j = 0; j < grad_params.size(); ++j) b.hyper_params[j].mutable_grad() = grad_params[j];
    b.mu.mutable_grad() = grad_y0.narrow(0, L.nh, L.w_dim);
    if (i > 0) {  // dL/dh(0) of this block is dL/dh(1) of the one before
      const BlockLayout& prev = runs[i - 1]->sde->layout();
      g1 = at::zeros({prev.size()}, options_);
      g1.narrow(0, 0, prev.nh).copy_(grad_y0.narrow(0, 0, L.nh));
    }
  }
  return r;
}

void BnnModel::zero_grad() {
  for (auto& [name, p] : params_) p.mutable_grad() = at::Tensor();
}

// ---- training ----------------------------------------------------------------------------------

StepResult BnnModel::train_step(const at::Tensor& x, const at::Tensor& y, double lr, double beta) {
  at::AutoGradMode enable(true);
  const at::Tensor xin = prepare_input(x);
  const at::Tensor target = prepare_target(y, xin.size(0));
  zero_grad();
  const Route route = config_.solver.gradient == GradientRoute::Adjoint ? Route::Adjoint : Route::Backprop;
  StepResult r;
  if (direct_applies(route)) {
    const Direct d = direct(xin, target, train_gen_, route, beta, Objective::Loss, true);
    r.loss = d.loss;
    r.nll = d.nll;
    r.kl = d.kl;
    r.nfe = d.nfe;
    r.nfe_backward = d.nfe_backward;
    r.steps = d.steps;
    r.t_end = d.t_end;
  } else {
    Forward f = forward(xin, train_gen_, route, nullptr);
    const Loss loss = loss_of(f, target, beta);
    r.loss = loss.total.item<double>();
    r.nll = loss.nll.item<double>();
    r.kl = loss.kl.item<double>();
    r.kl_w0 = f.kl_w0.item<double>();
    if (config_.likelihood == Likelihood::Categorical) {
      r.accuracy = (f.out.argmax(1) == target).to(at::kDouble).mean().item<double>();
    }
    if (!std::isfinite(r.loss)) {
      throw sde::EngineError("ERR_NUMERICAL", "the loss is not finite (nll " + std::to_string(r.nll) + ", kl " +
                                                  std::to_string(r.kl) + "); parameters unchanged");
    }
    torch::autograd::backward({loss.total});
    f.flush(blocks_);
    r.nfe = f.nfe();
    r.nfe_backward = f.nfe_backward();
    r.steps = f.steps();
    r.t_end = f.t_end();
  }

  at::NoGradGuard no_grad;
  adam_step_ += 1;
  if (!fused_update(lr, r.grad_norm)) {
    std::vector<at::Tensor> norms;
    for (auto& [name, p] : params_) {
      if (p.grad().defined()) norms.push_back(p.grad().norm().to(at::kDouble));
    }
    r.grad_norm = norms.empty() ? 0.0 : at::stack(norms).norm().item<double>();
    if (!std::isfinite(r.grad_norm)) {
      adam_step_ -= 1;
      throw sde::EngineError("ERR_NUMERICAL", "the gradient is not finite; parameters unchanged");
    }
    if (config_.clip > 0 && r.grad_norm > config_.clip) {
      const double coef = config_.clip / (r.grad_norm + 1e-6);
      for (auto& [name, p] : params_) {
        if (p.grad().defined()) p.mutable_grad().mul_(coef);
      }
    }
    // Adam (PyTorch's update, bias-corrected)
    const double b1 = config_.adam_beta1, b2 = config_.adam_beta2;
    const double bc1 = 1 - std::pow(b1, adam_step_), bc2 = 1 - std::pow(b2, adam_step_);
    for (size_t i = 0; i < params_.size(); ++i) {
      at::Tensor p = params_[i].second;
      const at::Tensor g = p.grad();
      if (!g.defined()) continue;
      at::Tensor& m = adam_m_[i].second;
      at::Tensor& v = adam_v_[i].second;
      m.mul_(b1).add_(g, 1 - b1);
      v.mul_(b2).addcmul_(g, g, 1 - b2);
      const at::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(config_.adam_eps);
      p.detach().addcdiv_(m, denom, -lr / bc1);
    }
  }
  if (config_.ema > 0) {
    const double decay = std::min(config_.ema, (1 + adam_step_) / (10 + adam_step_));
    for (size_t i = 0; i < params_.size(); ++i) ema_[i].second.mul_(decay).add_(params_[i].second.detach(), 1 - decay);
  }
  return r;
}

// ---- the optimiser's pass ------------------------------------------------------------------------

namespace {

namespace obase {
#include "bnn/adam_kernels.inc"
}  // namespace obase
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SDEBNN_ADAM_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define SDEBNN_ADAM_WIDE 1  // AVX intrinsics in adam_kernels.inc (GCC's target pragma leaves __AVX__ undefined)
namespace oavx2 {
#include "bnn/adam_kernels.inc"
}  // namespace oavx2
#undef SDEBNN_ADAM_WIDE
#pragma GCC pop_options
#endif

template <typename T>
struct OptimOps {
  double (*sum_squares)(const T*, int64_t);
  void (*adam_pass)(T*, T*, T*, T*, int64_t, double, double, double, double, double, double);
};

template <typename T>
const OptimOps<T>& optim_ops() {
  static const OptimOps<T> o = [] {
#ifdef SDEBNN_ADAM_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      return OptimOps<T>{&oavx2::sum_squares<T>, &oavx2::adam_pass<T>};
    }
#endif
    return OptimOps<T>{&obase::sum_squares<T>, &obase::adam_pass<T>};
  }();
  return o;
}

template <typename T>
void fused_update_t(const NamedTensors& params, NamedTensors& adam_m, NamedTensors& adam_v, const BnnConfig& c, double step,
                    double lr, double& grad_norm) {
  double sq = 0;
  for (const auto& [name, p] : params) {
    const at::Tensor& g = p.grad();
    if (g.defined()) sq += optim_ops<T>().sum_squares(g.data_ptr<T>(), g.numel());
  }
  grad_norm = std::sqrt(sq);
  if (!std::isfinite(grad_norm)) throw sde::EngineError("ERR_NUMERICAL", "the gradient is not finite; parameters unchanged");
  const double coef = c.clip > 0 && grad_norm > c.clip ? c.clip / (grad_norm + 1e-6) : 1.0;
  const double b1 = c.adam_beta1, b2 = c.adam_beta2;
  const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    optim_ops<T>().adam_pass(p.data_ptr<T>(), g.data_ptr<T>(), adam_m[i].second.data_ptr<T>(), adam_v[i].second.data_ptr<T>(), p.numel(),
              coef, b1, b2, std::sqrt(bc2), c.adam_eps, -lr / bc1);
    p.unsafeGetTensorImpl()->bump_version();  // an in-place write, as addcdiv_ would record
  }
}

}  // namespace

// Gradient norm, clipping and Adam in two passes over raw memory (one reading the gradients, one
// updating), instead of ~8 ATen ops per tensor with temporaries: on W1 (166k parameters, a ~4 ms
// step) those ops and their allocations cost ~0.8 ms. Only for CPU tensors of one float dtype,
// all contiguous; otherwise (accelerators, mixed layouts) returns false and the caller takes
// the ATen route. Throws ERR_NUMERICAL, before any write, on a non-finite gradient.
bool BnnModel::fused_update(double lr, double& grad_norm) {
  const at::ScalarType dtype = options_.dtype().toScalarType();
  if (!options_.device().is_cpu() || (dtype != at::kFloat && dtype != at::kDouble)) return false;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&p, &g, &adam_m_[i].second, &adam_v_[i].second}) {
      if (!t->device().is_cpu() || t->scalar_type() != dtype || !t->is_contiguous() || t->numel() != p.numel()) return false;
    }
  }
  try {
    if (dtype == at::kDouble) {
      fused_update_t<double>(params_, adam_m_, adam_v_, config_, adam_step_, lr, grad_norm);
    } else {
      fused_update_t<float>(params_, adam_m_, adam_v_, config_, adam_step_, lr, grad_norm);
    }
  } catch (...) {
    adam_step_ -= 1;
    throw;
  }
  return true;
}

GradientsResult BnnModel::gradients(const at::Tensor& x, const at::Tensor& y, double beta, Objective objective,
                                    std::optional<uint64_t> seed) {
  at::AutoGradMode enable(true);
  const at::Tensor xin = prepare_input(x);
  const at::Tensor target = prepare_target(y, xin.size(0));
  zero_grad();
  at::Generator local = at::make_generator<at::CPUGeneratorImpl>(seed.value_or(0));
  at::Generator& gen = seed ? local : train_gen_;
  const Route route = config_.solver.gradient == GradientRoute::Adjoint ? Route::Adjoint : Route::Backprop;
  GradientsResult r;
  if (direct_applies(route)) {
    const Direct d = direct(xin, target, gen, route, beta, objective, false);
    r.loss = d.loss;
    r.nll = d.nll;
    r.kl = d.kl;
  } else {
    Forward f = forward(xin, gen, route, nullptr);
    const Loss loss = loss_of(f, target, beta);
    torch::autograd::backward({objective == Objective::Kl ? loss.kl : loss.total});
    f.flush(blocks_);
    r.loss = loss.total.item<double>();
    r.nll = loss.nll.item<double>();
    r.kl = loss.kl.item<double>();
  }
  for (const auto& [name, p] : params_) {
    r.grads.emplace_back(name, p.grad().defined() ? p.grad().detach().clone() : at::zeros_like(p).detach());
  }
  zero_grad();
  return r;
}

at::Tensor BnnModel::predict(const at::Tensor& x, int64_t samples, bool use_ema, std::optional<uint64_t> seed) {
  if (samples < 1) throw sde::invalid_argument("Expected positive integer for samples");
  if (use_ema && ema_.empty()) throw sde::invalid_argument("options.ema: this model keeps no EMA (config.optimizer.ema is 0)");
  at::NoGradGuard no_grad;
  const at::Tensor xin = prepare_input(x);
  at::Generator local = at::make_generator<at::CPUGeneratorImpl>(seed.value_or(0));
  at::Generator& gen = seed ? local : eval_gen_;
  Swap swap;
  if (use_ema) {
    for (size_t i = 0; i < params_.size(); ++i) {
      swap.saved.emplace_back(params_[i].second, params_[i].second.detach().clone());
      params_[i].second.detach().copy_(ema_[i].second);
    }
  }
  std::vector<at::Tensor> outs;
  at::Tensor probs;
  for (int64_t s = 0; s < samples; ++s) {
    Forward f = forward(xin, gen, Route::None, nullptr);
    if (config_.likelihood == Likelihood::Categorical) {
      at::Tensor p = at::softmax(f.out, 1);
      probs = probs.defined() ? probs + p : p;
    } else {
      outs.push_back(f.out);
    }
  }
  return config_.likelihood == Likelihood::Categorical ? probs / static_cast<double>(samples) : at::stack(outs);
}

std::vector<BlockDiagnostics> BnnModel::diagnose(const at::Tensor& x, std::optional<uint64_t> seed) {
  at::NoGradGuard no_grad;
  const at::Tensor xin = prepare_input(x);
  at::Generator local = at::make_generator<at::CPUGeneratorImpl>(seed.value_or(0));
  at::Generator& gen = seed ? local : eval_gen_;
  std::vector<BlockDiagnostics> out;
  forward(xin, gen, Route::None, &out);
  return out;
}

// ---- state -------------------------------------------------------------------------------------

namespace {
at::Tensor generator_state(at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state().to(at::kDouble);
}
}  // namespace

NamedTensors BnnModel::state() const {
  NamedTensors s;
  for (const auto& [name, p] : params_) s.emplace_back(name, p.detach());
  s.emplace_back("adam.step", at::full({1}, adam_step_, at::TensorOptions().dtype(at::kDouble)));
  for (const auto& [name, m] : adam_m_) s.emplace_back("adam.exp_avg." + name, m);
  for (const auto& [name, v] : adam_v_) s.emplace_back("adam.exp_avg_sq." + name, v);
  for (const auto& [name, e] : ema_) s.emplace_back("ema." + name, e);
  auto& self = const_cast<BnnModel&>(*this);
  s.emplace_back("rng.train", generator_state(self.train_gen_));
  s.emplace_back("rng.eval", generator_state(self.eval_gen_));
  return s;
}

void BnnModel::set_state(const NamedTensors& incoming, bool strict) {
  const NamedTensors current = state();
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [name, t] : current) by_name[name] = t;
  std::map<std::string, at::Tensor> given;
  for (const auto& [name, t] : incoming) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw sde::invalid_argument("state: unknown tensor '" + name + "' for this model");
    if (t.sizes() != it->second.sizes()) {
      throw sde::invalid_argument("state: tensor '" + name + "' has shape " + shape_string(t.sizes()) + " but the model expects " +
                                  shape_string(it->second.sizes()));
    }
    if (!at::isfinite(t).all().item<bool>()) throw sde::invalid_argument("state: tensor '" + name + "' holds non-finite values");
    if (name.rfind("rng.", 0) == 0) {
      const at::Tensor d = t.to(at::kDouble);
      if (!(d == d.round()).all().item<bool>() || d.min().item<double>() < 0 || d.max().item<double>() > 255) {
        throw sde::invalid_argument("state: tensor '" + name + "' must hold bytes (integers in [0, 255])");
      }
    }
    given[name] = t;
  }
  if (strict) {
    for (const auto& [name, t] : current) {
      if (!given.count(name)) throw sde::invalid_argument("state: tensor '" + name + "' is missing");
    }
  }
  at::NoGradGuard no_grad;
  for (const auto& [name, t] : given) {
    if (name == "adam.step") {
      adam_step_ = t.to(at::kDouble).item<double>();
    } else if (name == "rng.train" || name == "rng.eval") {
      at::Generator& gen = name == "rng.train" ? train_gen_ : eval_gen_;
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(t.to(at::kDouble).to(at::kByte).contiguous());
    } else {
      at::Tensor target = by_name[name];
      target.detach().copy_(t.to(target.options()));
    }
  }
}

}  // namespace bnn
