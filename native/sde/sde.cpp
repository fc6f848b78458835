#include "sde/sde.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <stdexcept>

#include "sde/buffered.h"
#include "sde/errors.h"
#include "sde/routes.h"

namespace sde {

const char* to_string(NoiseType noise) {
  switch (noise) {
    case NoiseType::Diagonal: return "diagonal";
    case NoiseType::Additive: return "additive";
    case NoiseType::Scalar: return "scalar";
    case NoiseType::General: return "general";
  }
  return "?";
}

const char* to_string(SdeType type) { return type == SdeType::Ito ? "ito" : "stratonovich"; }

NoiseType parse_noise_type(const std::string& name) {
  if (name == "diagonal") return NoiseType::Diagonal;
  if (name == "additive") return NoiseType::Additive;
  if (name == "scalar") return NoiseType::Scalar;
  if (name == "general") return NoiseType::General;
  throw invalid_argument("Expected 'diagonal', 'additive', 'scalar' or 'general' for noiseType but received '" + name +
                         "'");
}

SdeType parse_sde_type(const std::string& name) {
  if (name == "ito") return SdeType::Ito;
  if (name == "stratonovich") return SdeType::Stratonovich;
  throw invalid_argument("Expected 'ito' or 'stratonovich' for sdeType but received '" + name + "'");
}

at::Tensor SDE::diffusion_prod(double t, const at::Tensor& y, const at::Tensor& dW) {
  const at::Tensor g = diffusion(t, y);
  switch (noise_) {
    case NoiseType::Diagonal:
    case NoiseType::Additive: return g * dW;
    case NoiseType::Scalar: return g.squeeze(-1) * dW;  // dW is [B, 1]
    case NoiseType::General: return at::matmul(g, dW.unsqueeze(-1)).squeeze(-1);
  }
  return g;
}

at::Tensor SDE::increment(double t, const at::Tensor& y, double dt, const at::Tensor& dW) {
  return drift(t, y) * dt + diffusion_prod(t, y, dW);
}

SDE::Vjp SDE::stratonovich_vjp(double t, const at::Tensor& y, const std::vector<VjpTerm>& terms, bool with_params) {
  at::AutoGradMode enable(true);
  const at::Tensor y_leaf = y.detach().requires_grad_(true);
  at::Tensor f;  // the Stratonovich drift, evaluated once for every term with a dt
  std::vector<at::Tensor> outputs, cotangents;
  for (const VjpTerm& term : terms) {
    at::Tensor F;
    if (term.dt) {
      if (!f.defined()) {
        f = drift(t, y_leaf);
        if (type_ == SdeType::Ito) f = f + ito_correction(t, y_leaf);
      }
      F = f * *term.dt;
    }
    if (term.dW.defined()) {
      const at::Tensor G = diffusion_prod(t, y_leaf, term.dW);
      F = F.defined() ? F + G : G;
    }
    outputs.push_back(F);
    cotangents.push_back(term.a);
  }
  std::vector<at::Tensor> inputs{y_leaf};
  if (with_params) {
    const std::vector<at::Tensor> params = parameters();
    inputs.insert(inputs.end(), params.begin(), params.end());
  }
  std::vector<at::Tensor> grads = torch::autograd::grad(outputs, inputs, cotangents, /*retain_graph=*/false,
                                                        /*create_graph=*/false, /*allow_unused=*/true);
  Vjp out;
  for (const at::Tensor& F : outputs) out.F.push_back(F.detach());
  out.grad_y = grads[0].defined() ? grads[0] : at::zeros_like(y);
  out.grad_params.assign(grads.begin() + 1, grads.end());
  return out;
}

namespace {
// The local graph for derivative terms: differentiable (create_graph) when the caller is
// building a graph itself (backprop through the solver, or the adjoint's VJPs).
struct LocalGraph {
  at::Tensor y;
  at::AutoGradMode enable{true};
  explicit LocalGraph(const at::Tensor& y_in) : y(y_in.requires_grad() ? y_in : y_in.detach().requires_grad_(true)) {}
};

// (J_g u) for the diffusion column g(y) (shaped like y), by the double-VJP trick.
at::Tensor jvp(const at::Tensor& out, const at::Tensor& y, const at::Tensor& u, bool create_graph) {
  at::Tensor probe = at::zeros_like(out).requires_grad_(true);
  at::Tensor vjp = torch::autograd::grad({out}, {y}, {probe}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  return torch::autograd::grad({vjp}, {probe}, {u}, /*retain_graph=*/true, create_graph)[0];
}
}  // namespace

at::Tensor SDE::gdg_prod(double t, const at::Tensor& y, const at::Tensor& v) {
  switch (noise_) {
    case NoiseType::Additive: return at::zeros_like(y);
    case NoiseType::Diagonal: {
      const bool create_graph = at::GradMode::is_enabled();
      LocalGraph local(y);
      at::Tensor g = diffusion(t, local.y);
      // VJP with (g v): sum_i g_i v_i dg_i/dy_k = g_k v_k dg_k/dy_k for diagonal dependence.
      at::Tensor weights = create_graph ? g * v : (g * v).detach();
      at::Tensor out = torch::autograd::grad({g}, {local.y}, {weights}, /*retain_graph=*/create_graph, create_graph)[0];
      return create_graph ? out : out.detach();
    }
    case NoiseType::Scalar: {
      const bool create_graph = at::GradMode::is_enabled();
      LocalGraph local(y);
      at::Tensor g = diffusion(t, local.y).squeeze(-1);
      at::Tensor jg = jvp(g, local.y, create_graph ? g : g.detach(), create_graph);
      return create_graph ? jg * v : (jg * v).detach();
    }
    case NoiseType::General: break;
  }
  throw invalid_argument("gdg_prod: general noise has no Milstein term without Levy areas");
}

at::Tensor SDE::ito_correction(double t, const at::Tensor& y) {
  switch (noise_) {
    case NoiseType::Additive: return at::zeros_like(y);
    case NoiseType::Diagonal: return -0.5 * gdg_prod(t, y, at::ones_like(y));
    case NoiseType::Scalar: return -0.5 * gdg_prod(t, y, at::ones({y.size(0), 1}, y.options()));
    case NoiseType::General: {
      const bool create_graph = at::GradMode::is_enabled();
      LocalGraph local(y);
      at::Tensor g = diffusion(t, local.y);  // [B, d, m]
      at::Tensor total = at::zeros_like(y);
      for (int64_t i = 0; i < g.size(-1); ++i) {
        at::Tensor column = g.select(-1, i);
        total = total + jvp(column, local.y, create_graph ? column : column.detach(), create_graph);
      }
      return create_graph ? -0.5 * total : (-0.5 * total).detach();
    }
  }
  return at::zeros_like(y);
}

std::vector<int64_t> SDE::brownian_shape(const at::Tensor& y0) const {
  switch (noise_) {
    case NoiseType::Diagonal:
    case NoiseType::Additive: return y0.sizes().vec();
    case NoiseType::Scalar: return {y0.size(0), 1};
    case NoiseType::General: break;
  }
  throw invalid_argument("an SDE with general noise must define its Brownian dimension");
}

RouteOffer SDE::route_offer() const { return {}; }

std::unique_ptr<BufferedSolve> SDE::buffered_solve(const at::Tensor&, BrownianMotion&, BufferedMode,
                                                   const std::vector<double>&, const StepOptions&, const StepOptions&) {
  throw std::logic_error("this SDE has no buffered route");
}

void SDE::check_state(const at::Tensor& y0) const {
  if (y0.dim() != 2) {
    throw invalid_argument("Expected y0 of shape [batch, d] but received " + std::to_string(y0.dim()) + " dimensions");
  }
}

}  // namespace sde
