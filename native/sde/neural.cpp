#include "sde/neural.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "sde/errors.h"
#include "sde/neural_kernels.h"
#include "sde/owned.h"

namespace sde {

NamedMlp::NamedMlp(int64_t in, int64_t out, const MlpSpec& spec, const at::TensorOptions& options, std::string prefix_,
                   at::Generator& gen)
    : prefix(std::move(prefix_)) {
  shape.sizes.push_back(in);
  shape.sizes.insert(shape.sizes.end(), spec.hidden.begin(), spec.hidden.end());
  shape.sizes.push_back(out);
  shape.activation = spec.activation;
  shape.time = spec.time_input ? TimeInput::First : TimeInput::None;
  for (const std::vector<int64_t>& s : shape.parameter_shapes()) {
    const int64_t fan_in = s.size() == 2 ? s[1] : params.back().size(1);
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    params.push_back(fan_in_uniform(n, fan_in, gen, options).view(s).to(options.device()).requires_grad_(true));
  }
  weights_ = MlpWeights::of_list(params);
}

void NamedMlp::collect(std::vector<std::pair<std::string, at::Tensor>>& named) const {
  for (size_t i = 0; i < params.size(); ++i) {
    named.emplace_back(prefix + "." + std::to_string(i / 2) + (i % 2 ? ".bias" : ".weight"), params[i]);
  }
}

namespace {
at::TensorOptions options_of(const NeuralSdeSpec& spec) {
  return at::TensorOptions().dtype(spec.dtype).device(spec.device);
}

int64_t diffusion_width(const NeuralSdeSpec& spec) {
  return spec.noise == NoiseType::General ? spec.d * spec.m : spec.d;
}

const NeuralSdeSpec& validated(const NeuralSdeSpec& spec) {
  if (spec.d < 1) throw invalid_argument("Expected positive integer for d");
  if (spec.noise == NoiseType::General && spec.m < 1)
    throw invalid_argument("Expected positive integer for m (general noise)");
  if (spec.diffusion_kind == DiffusionKind::ScaledTanh && spec.noise != NoiseType::Diagonal) {
    throw invalid_argument("diffusion 'scaled_tanh' needs noiseType 'diagonal'");
  }
  if (spec.diffusion_kind == DiffusionKind::Constant && spec.noise != NoiseType::Additive) {
    throw invalid_argument("diffusion 'constant' needs noiseType 'additive'");
  }
  if (spec.noise == NoiseType::Additive && spec.diffusion_kind == DiffusionKind::Mlp && !spec.diffusion.time_input) {
    throw invalid_argument(
        "additive noise cannot depend on the state: use diffusion 'constant' or an MLP with timeInput");
  }
  return spec;
}
}  // namespace

NeuralSDE::NeuralSDE(const NeuralSdeSpec& spec)
    : SDE(spec.noise, spec.type),
      spec_(validated(spec)),
      gen_(at::detail::createCPUGenerator(spec.seed)),
      drift_net_(spec.d, spec.d, spec.drift, options_of(spec), "drift", gen_) {
  if (spec.diffusion_kind == DiffusionKind::Mlp) {
    // Additive noise: the network sees only t (its state input has width 0).
    const int64_t in = spec.noise == NoiseType::Additive ? 0 : spec.d;
    diffusion_net_ =
        std::make_unique<NamedMlp>(in, diffusion_width(spec), spec.diffusion, options_of(spec), "diffusion", gen_);
  } else {
    s_ = at::full({spec.d}, spec.diffusion_init, options_of(spec)).requires_grad_(true);
  }
  for (auto& [name, p] : named_parameters()) params_.push_back(p);
}

// Without a graph (grad mode off, as in an adjoint's forward solve), the fused route evaluates
// the networks by its own kernels; with one, or with kernels 'autograd', by ATen ops.
at::Tensor NeuralSDE::drift(double t, const at::Tensor& y) {
  if (fused() && !at::GradMode::is_enabled()) {
    if (MlpRawPass::applies(drift_net_.shape, drift_net_.weights(), y)) {
      return MlpRawPass(drift_net_.shape, drift_net_.weights(), t, y, shared_solver_pool()).output();
    }
    MlpCache cache;
    return mlp_forward(drift_net_.shape, drift_net_.weights(), t, y, &cache);
  }
  return mlp_forward(drift_net_.shape, drift_net_.weights(), t, y, nullptr);
}

at::Tensor NeuralSDE::diffusion(double t, const at::Tensor& y) {
  switch (spec_.diffusion_kind) {
    case DiffusionKind::ScaledTanh:
      if (fused() && !at::GradMode::is_enabled()) {
        Pass pass;
        diffusion_factors(y, pass);
        return pass.T.mul_(pass.S).add_(spec_.diffusion_offset);
      }
      return at::sigmoid(s_) * at::tanh(y) + spec_.diffusion_offset;
    case DiffusionKind::Constant: return s_.expand_as(y);
    case DiffusionKind::Mlp: break;
  }
  at::Tensor input = spec_.noise == NoiseType::Additive ? y.narrow(1, 0, 0) : y;
  at::Tensor g = activate(spec_.diffusion_output,
                          mlp_forward(diffusion_net_->shape, diffusion_net_->weights(), t, input, nullptr)) +
                 spec_.diffusion_offset;
  switch (spec_.noise) {
    case NoiseType::Scalar: return g.unsqueeze(-1);
    case NoiseType::General: return g.view({y.size(0), spec_.d, spec_.m});
    default: return g;
  }
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One increment f dt + g dW as a single autograd node with the hand-written VJP as its backward.
struct IncrementFn : public torch::autograd::Function<IncrementFn> {
  static variable_list forward(AutogradContext* ctx, std::shared_ptr<const NeuralSDE> sde, double t, double dt,
                               const at::Tensor& y, const at::Tensor& dW, at::TensorList params) {
    const NeuralSDE::Pass pass = sde->linearize(t, y, /*with_drift=*/true, /*kept=*/true);
    at::Tensor F = sde->fused_increment(pass, dt, dW, /*correction=*/false);
    ctx->saved_data["sde"] = keep(std::move(sde));
    ctx->saved_data["dt"] = dt;
    ctx->saved_data["mlp"] = pass.mlp;
    ctx->saved_data["dW"] = dW;
    // tanh(y) is recomputed in backward rather than kept: backprop through many steps holds a
    // quarter less memory (y itself is kept by the solution's graph anyway).
    ctx->saved_data["y"] = y;
    ctx->set_materialize_grads(false);
    (void)params;  // inputs only so that autograd routes their gradients through backward
    return {F};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto sde = kept<const NeuralSDE>(ctx->saved_data["sde"]);
    const size_t n_params = sde->parameters().size();
    variable_list out(5 + n_params);
    if (!grads[0].defined()) return out;
    NeuralSDE::Pass pass;
    pass.mlp = ctx->saved_data["mlp"].toTensorVector();
    sde->diffusion_factors(ctx->saved_data["y"].toTensor(), pass);
    at::Tensor grad_y;
    std::vector<at::Tensor> grad_params;
    sde->fused_vjp(pass, {{ctx->saved_data["dt"].toDouble(), ctx->saved_data["dW"].toTensor(), grads[0]}},
                   /*correction=*/false, grad_y, &grad_params);
    out[3] = grad_y;
    for (size_t i = 0; i < n_params; ++i) out[5 + i] = grad_params[i];
    return out;
  }
};

bool fusable_on_cpu(std::initializer_list<const at::Tensor*> tensors) {
  for (const at::Tensor* t : tensors) {
    if (t->defined() && (!t->is_cpu() || !t->is_contiguous())) return false;
  }
  return true;
}

}  // namespace

NeuralSDE::Pass NeuralSDE::linearize(double t, const at::Tensor& y, bool with_drift, bool kept) const {
  at::NoGradGuard no_grad;
  Pass pass;
  pass.pooled = !kept;
  if (with_drift && MlpRawPass::applies(drift_net_.shape, drift_net_.weights(), y)) {
    MlpRawPass raw(drift_net_.shape, drift_net_.weights(), t, y, shared_solver_pool());
    pass.f = raw.output();
    if (kept) {
      pass.mlp = raw.cache(y);
    } else {
      pass.raw = std::move(raw);
    }
  } else if (with_drift) {
    pass.f = mlp_forward(drift_net_.shape, drift_net_.weights(), t, y, &pass.mlp);
  }
  diffusion_factors(y, pass);
  return pass;
}

void NeuralSDE::diffusion_factors(const at::Tensor& y, Pass& pass) const {
  if (spec_.diffusion_kind != DiffusionKind::ScaledTanh) return;
  at::NoGradGuard no_grad;
  pass.S = at::sigmoid(s_.detach());
  pass.T = pass.pooled ? fresh_like(y) : at::empty_like(y, at::MemoryFormat::Contiguous);
  tanh_into(y, pass.T);
}

at::Tensor NeuralSDE::fused_increment(const Pass& pass, std::optional<double> dt, const at::Tensor& dW,
                                      bool correction) const {
  at::NoGradGuard no_grad;
  if (spec_.diffusion_kind != DiffusionKind::ScaledTanh) {  // Constant: g = s, no correction
    at::Tensor F = dt ? pass.f * *dt : at::Tensor();
    if (dW.defined()) F = F.defined() ? F.add_(s_.detach() * dW) : s_.detach() * dW;
    return F;
  }
  correction = correction && sde_type() == SdeType::Ito;
  const at::Tensor &S = pass.S, &T = pass.T;
  if (fusable_on_cpu({&pass.f, &T, &dW}) && T.dim() == 2) {
    at::Tensor F = pass.pooled ? fresh_like(T) : at::empty_like(T);
    AT_DISPATCH_FLOATING_TYPES(T.scalar_type(), "scaled_tanh_forward", [&] {
      scaled_tanh_forward_cpu(
          F.data_ptr<scalar_t>(), dt ? pass.f.data_ptr<scalar_t>() : nullptr, T.data_ptr<scalar_t>(),
          S.data_ptr<scalar_t>(), dW.defined() ? dW.data_ptr<scalar_t>() : nullptr,
          {T.size(0), T.size(1), dt.value_or(0.0), spec_.diffusion_offset}, dt.has_value(), correction);
    });
    return F;
  }
  // Other devices: the same formulas as ATen ops.
  const at::Tensor g = S * T + spec_.diffusion_offset;
  at::Tensor F;
  if (dt) F = (correction ? pass.f - 0.5 * g * S * (1 - T * T) : pass.f) * *dt;
  if (dW.defined()) F = F.defined() ? F.add_(g * dW) : g * dW;
  return F;
}

void NeuralSDE::fused_vjp(const Pass& pass, const std::vector<VjpTerm>& terms, bool correction, at::Tensor& grad_y,
                          std::vector<at::Tensor>* grad_params) const {
  at::NoGradGuard no_grad;
  const bool scaled = spec_.diffusion_kind == DiffusionKind::ScaledTanh;
  correction = correction && scaled && sde_type() == SdeType::Ito;
  const size_t n_drift = drift_net_.params.size();
  std::vector<at::Tensor> grads(n_drift + 1);
  at::Tensor A;       // the drift MLP's output cotangent: sum of a dt over the terms
  at::Tensor grad_s;  // d/d(sigmoid(s)) (ScaledTanh) or d/ds (Constant)
  const auto add = [](at::Tensor& sum, const at::Tensor& x) { sum = sum.defined() ? sum.add_(x) : x; };
  for (const VjpTerm& term : terms) {
    if (!scaled) {  // Constant
      if (term.dt) add(A, term.a * *term.dt);
      if (term.dW.defined()) add(grad_s, (term.a * term.dW).sum(0));
      continue;
    }
    const at::Tensor &S = pass.S, &T = pass.T;
    const at::Tensor a = term.a.contiguous();
    if (fusable_on_cpu({&a, &T, &term.dW}) && a.dim() == 2) {
      if (!grad_y.defined()) grad_y = pass.pooled ? fresh_like(a).zero_() : at::zeros_like(a);
      if (!grad_s.defined()) grad_s = at::zeros_like(S);
      if (term.dt && !A.defined()) A = pass.pooled ? fresh_like(a).zero_() : at::zeros_like(a);
      AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "scaled_tanh_backward", [&] {
        scaled_tanh_backward_cpu(
            a.data_ptr<scalar_t>(), T.data_ptr<scalar_t>(), S.data_ptr<scalar_t>(),
            term.dW.defined() ? term.dW.data_ptr<scalar_t>() : nullptr, term.dt ? A.data_ptr<scalar_t>() : nullptr,
            grad_y.data_ptr<scalar_t>(), grad_s.data_ptr<scalar_t>(),
            {a.size(0), a.size(1), term.dt.value_or(0.0), spec_.diffusion_offset}, term.dt.has_value(), correction);
      });
      continue;
    }
    // Other devices: the same formulas as ATen ops.
    const at::Tensor D = 1 - T * T;
    const double o = spec_.diffusion_offset;
    if (term.dt) {
      const at::Tensor At = a * *term.dt;
      add(A, At);
      if (correction) {
        add(grad_y, At * (-0.5) * S * D * (S * (D - 2 * T * T) - 2 * o * T));
        add(grad_s, (At * (-0.5) * D * (2 * S * T + o)).sum(0));
      }
    }
    if (term.dW.defined()) {
      const at::Tensor aW = a * term.dW;
      add(grad_y, aW * S * D);
      add(grad_s, (aW * T).sum(0));
    }
  }
  if (A.defined()) {
    MlpGrads drift_grads;
    MlpGrads* into = grad_params ? &drift_grads : nullptr;
    add(grad_y, pass.raw ? pass.raw->vjp(A, into) : mlp_vjp(drift_net_.shape, drift_net_.weights(), pass.mlp, A, into));
    for (size_t j = 0; grad_params && j < drift_grads.W.size(); ++j) {
      grads[2 * j] = drift_grads.W[j];
      grads[2 * j + 1] = drift_grads.b[j];
    }
  }
  if (!grad_y.defined()) grad_y = at::zeros_like(terms.front().a);
  if (!grad_params) return;
  if (!grad_s.defined()) grad_s = at::zeros_like(s_);
  grads[n_drift] = scaled ? grad_s.mul_(pass.S * (1 - pass.S)) : grad_s;  // through S = sigmoid(s)
  *grad_params = std::move(grads);  // the drift's stay undefined (zero) without a dt
}

at::Tensor NeuralSDE::increment(double t, const at::Tensor& y, double dt, const at::Tensor& dW) {
  if (!fused()) return SDE::increment(t, y, dt, dW);
  if (!at::GradMode::is_enabled()) {  // no graph: no autograd node, and the raw kernel's pass
    return fused_increment(linearize(t, y, /*with_drift=*/true, /*kept=*/false), dt, dW, /*correction=*/false);
  }
  return IncrementFn::apply(shared_from_this(), t, dt, y, dW, at::TensorList(params_))[0];
}

SDE::Vjp NeuralSDE::stratonovich_vjp(double t, const at::Tensor& y, const std::vector<VjpTerm>& terms,
                                     bool with_params) {
  if (!fused()) return SDE::stratonovich_vjp(t, y, terms, with_params);
  bool with_drift = false;
  for (const VjpTerm& term : terms) with_drift = with_drift || term.dt.has_value();
  const Pass pass = linearize(t, y, with_drift, /*kept=*/false);
  Vjp out;
  for (const VjpTerm& term : terms) out.F.push_back(fused_increment(pass, term.dt, term.dW, /*correction=*/true));
  fused_vjp(pass, terms, /*correction=*/true, out.grad_y, with_params ? &out.grad_params : nullptr);
  return out;
}

std::vector<int64_t> NeuralSDE::brownian_shape(const at::Tensor& y0) const {
  if (spec_.noise == NoiseType::General) return {y0.size(0), spec_.m};
  return SDE::brownian_shape(y0);
}

void NeuralSDE::check_state(const at::Tensor& y0) const {
  if (y0.dim() != 2 || y0.size(1) != spec_.d) {
    throw invalid_argument("Expected y0 of shape [batch, " + std::to_string(spec_.d) + "] for this neural SDE");
  }
  if (y0.scalar_type() != spec_.dtype) throw invalid_argument("y0's dtype differs from the SDE's parameters");
}

std::vector<std::pair<std::string, at::Tensor>> NeuralSDE::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> named;
  drift_net_.collect(named);
  if (diffusion_net_) diffusion_net_->collect(named);
  if (s_.defined()) named.emplace_back("diffusion.s", s_);
  return named;
}

std::vector<at::Tensor> NeuralSDE::parameters() const { return params_; }

RouteOffer NeuralSDE::route_offer() const { return {spec_.kernels, hand_written(), hand_written()}; }

void NeuralSDE::set_parameter(const std::string& name, const at::Tensor& value) {
  for (auto& [n, p] : named_parameters()) {
    if (n != name) continue;
    if (!value.sizes().equals(p.sizes())) throw invalid_argument("parameter '" + name + "' has a different shape");
    at::NoGradGuard no_grad;
    p.copy_(value);
    return;
  }
  throw invalid_argument("unknown parameter '" + name + "'");
}

}  // namespace sde
