#include "bnn/block_sde.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>

#include "sde/errors.h"
#include "sde/owned.h"

namespace bnn {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One evaluation of the block's drift (and the hypernetwork output the noise term needs) as a
// single autograd node with a hand-written backward: the forward is plain ATen work without a
// graph, the backward composes the dynamics' and the hypernetwork's VJPs. Outputs:
// [drift (empty when the dynamics were skipped), g, g_sg (stl only)].
struct BlockFn : public torch::autograd::Function<BlockFn> {
  static variable_list forward(AutogradContext* ctx, const BlockSDE* block, double t, bool with_dynamics,
                               const at::Tensor& y, at::TensorList params) {
    std::vector<at::Tensor> p(params.begin(), params.end());
    Cache hyper_cache, dyn_cache;
    BlockSDE::Eval e = block->evaluate_raw(t, y, p, with_dynamics, &hyper_cache, with_dynamics ? &dyn_cache : nullptr);
    // what backward needs, owned (not the SDE: its last evaluation holds this node's outputs)
    ctx->saved_data["dynamics"] = sde::keep(block->dynamics_ptr());
    if (block->hypernet_ptr()) ctx->saved_data["hypernet"] = sde::keep(block->hypernet_ptr());
    if (block->bank_ptr()) ctx->saved_data["bank"] = sde::keep(block->bank_ptr());
    ctx->saved_data["nh"] = block->layout().nh;
    ctx->saved_data["w_dim"] = block->layout().w_dim;
    if (!block->hypernet_ptr()) ctx->saved_data["slice"] = block->slice_at(t);
    ctx->saved_data["size"] = block->layout().size();
    ctx->saved_data["sigma"] = block->sigma();
    ctx->saved_data["t"] = t;
    ctx->saved_data["with_dynamics"] = with_dynamics;
    ctx->saved_data["hyper_cache"] = hyper_cache;
    ctx->saved_data["dyn_cache"] = dyn_cache;
    ctx->saved_data["g"] = e.g.detach();  // an alias without the output's grad_fn: no reference cycle
    std::vector<at::Tensor> saved{y};
    saved.insert(saved.end(), p.begin(), p.end());
    ctx->save_for_backward(saved);
    ctx->set_materialize_grads(false);
    variable_list out{with_dynamics ? e.drift : at::empty({0}, y.options()), e.g};
    if (block->estimator() == Estimator::Stl) out.push_back(e.g.clone());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto dynamics = sde::kept<const Dynamics>(ctx->saved_data["dynamics"]);
    const bool static_weights = ctx->saved_data.find("hypernet") == ctx->saved_data.end();
    const auto hypernet = static_weights ? nullptr : sde::kept<const Hypernet>(ctx->saved_data["hypernet"]);
    const auto bank =
        ctx->saved_data.find("bank") != ctx->saved_data.end() ? sde::kept<GradBank>(ctx->saved_data["bank"]) : nullptr;
    const int64_t nh = ctx->saved_data["nh"].toInt(), w_dim = ctx->saved_data["w_dim"].toInt();
    const double sigma = ctx->saved_data["sigma"].toDouble();
    const double t = ctx->saved_data["t"].toDouble();
    const bool with_dynamics = ctx->saved_data["with_dynamics"].toBool();
    const Cache hyper_cache = ctx->saved_data["hyper_cache"].toTensorVector();
    const Cache dyn_cache = ctx->saved_data["dyn_cache"].toTensorVector();
    const at::Tensor g = ctx->saved_data["g"].toTensor();
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& y = saved[0];
    const std::vector<at::Tensor> params(saved.begin() + 1, saved.end());

    const at::Tensor v_drift = grads[0];
    const at::Tensor v_g = grads.size() > 1 ? grads[1] : at::Tensor();
    const at::Tensor v_sg = grads.size() > 2 ? grads[2] : at::Tensor();
    at::Tensor vp, dh, dw;
    int64_t dw_at = nh;    // where dw goes in y: all of w, or the slice the dynamics used
    if (static_weights) {  // drift [f_h, 0]: only the dynamics' VJP
      dw_at += ctx->saved_data["slice"].toInt();
      const at::Tensor w = y.narrow(0, dw_at, dynamics->w_dim());
      if (v_drift.defined()) std::tie(dh, dw) = dynamics->vjp(t, w, dyn_cache, v_drift.narrow(0, 0, nh));
    } else if (v_drift.defined() && with_dynamics) {
      const at::Tensor w = y.narrow(0, nh, w_dim);
      const at::Tensor v_w = v_drift.narrow(0, nh, w_dim);
      const at::Tensor v_kl = v_drift.narrow(0, nh + w_dim, 1);
      // d/dg of (g - w) and of 0.5 ||g||^2 / sigma^2
      vp = v_w + g * (v_kl / (sigma * sigma));
      auto [dh_dyn, dw_dyn] = dynamics->vjp(t, w, dyn_cache, v_drift.narrow(0, 0, nh));
      dh = dh_dyn;
      dw = dw_dyn - v_w;
    }
    if (v_g.defined() && !static_weights) vp = vp.defined() ? vp + v_g : v_g;
    std::vector<at::Tensor> d_params(params.size());
    if (vp.defined() || v_sg.defined()) {
      const bool params_flow = vp.defined();
      auto [dp, dw_hyper] = hypernet->vjp(params, hyper_cache, params_flow ? vp : at::zeros_like(v_sg), v_sg,
                                          params_flow ? bank.get() : nullptr);
      if (params_flow) d_params = dp;
      dw = dw.defined() ? dw + dw_hyper : dw_hyper;
    }
    at::Tensor dy = at::zeros({ctx->saved_data["size"].toInt()}, y.options());
    if (dh.defined()) dy.narrow(0, 0, nh).copy_(dh.reshape({-1}));
    if (dw.defined()) dy.narrow(0, dw_at, dw.numel()).copy_(dw);
    variable_list out{at::Tensor(), at::Tensor(), at::Tensor(), dy};
    out.insert(out.end(), d_params.begin(), d_params.end());
    return out;
  }
};

at::Tensor last_entry(const at::Tensor& value, int64_t size) {
  // [0, ..., 0, value] of length size, differentiable in value.
  return at::constant_pad_nd(value.reshape({1}), {size - 1, 0});
}

std::vector<at::Tensor> detached(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : params) out.push_back(p.detach());
  return out;
}

}  // namespace

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

BlockSDE::BlockSDE(std::shared_ptr<const Dynamics> dynamics, std::shared_ptr<const Hypernet> hypernet,
                   std::vector<at::Tensor> hyper_params, double sigma, Estimator estimator, sde::SdeType type,
                   int64_t batch, sde::Route route, const at::TensorOptions& options, int64_t layers)
    : sde::SDE(estimator == Estimator::Ckl ? sde::NoiseType::Additive : sde::NoiseType::General, type),
      dynamics_(std::move(dynamics)),
      hypernet_(std::move(hypernet)),
      params_(std::move(hyper_params)),
      sigma_(sigma),
      estimator_(estimator),
      fused_(route != sde::Route::Autograd),
      options_(options),
      layers_(layers) {
  if (!hypernet_ && (estimator != Estimator::Ckl || !params_.empty()))
    throw std::logic_error("BlockSDE: static weights take the additive (ckl) form and no hypernetwork parameters");
  if (layers < 1 || (hypernet_ && layers != 1)) throw std::logic_error("BlockSDE: layers are static weights' only");
  layout_.batch = batch;
  layout_.nh = dynamics_->state_numel(batch);
  layout_.w_dim = dynamics_->w_dim() * layers;
  layout_.tail = !hypernet_ ? 0 : estimator == Estimator::Ckl ? 1 : 2;
}

at::Tensor BlockSDE::pack(const at::Tensor& h, const at::Tensor& w0) const {
  return at::cat({dynamics_->to_state(h), w0, at::zeros({layout_.tail}, w0.options())});
}
at::Tensor BlockSDE::h_of(const at::Tensor& y) const {
  return dynamics_->from_state(y.narrow(0, 0, layout_.nh), layout_.batch);
}
int64_t BlockSDE::slice_at(double t) const {
  const auto k = static_cast<int64_t>(std::floor(t * static_cast<double>(layers_) + 0.5));
  return std::min(std::max<int64_t>(k, 0), layers_ - 1) * dynamics_->w_dim();
}
at::Tensor BlockSDE::w_of(const at::Tensor& y) const { return y.narrow(0, layout_.nh, layout_.w_dim); }
at::Tensor BlockSDE::kl_of(const at::Tensor& y) const {
  return y.narrow(0, layout_.nh + layout_.w_dim, layout_.tail).sum();
}

BlockSDE::Eval BlockSDE::evaluate_raw(double t, const at::Tensor& y, const std::vector<at::Tensor>& params,
                                      bool with_dynamics, Cache* hyper_cache, Cache* dyn_cache, bool reference) const {
  Eval e;
  if (!hypernet_) {
    e.g = at::empty({0}, y.options());
    if (with_dynamics) {
      const at::Tensor h = y.narrow(0, 0, layout_.nh);
      const at::Tensor w = y.narrow(0, layout_.nh + slice_at(t), dynamics_->w_dim());
      const at::Tensor fh = reference ? dynamics_->reference(t, h, w) : dynamics_->forward(t, h, w, dyn_cache);
      e.drift = at::cat({fh, at::zeros({layout_.w_dim}, y.options())});
    }
    return e;
  }
  const at::Tensor w = w_of(y);
  e.g = hypernet_->forward(params, w, t, hyper_cache);
  if (estimator_ == Estimator::Stl) e.g_sg = e.g;
  if (with_dynamics) {
    const at::Tensor h = y.narrow(0, 0, layout_.nh);
    const at::Tensor fh = reference ? dynamics_->reference(t, h, w) : dynamics_->forward(t, h, w, dyn_cache);
    const at::Tensor kl_rate = (at::dot(e.g, e.g) * (0.5 / (sigma_ * sigma_))).reshape({1});
    std::vector<at::Tensor> parts{fh, e.g - w, kl_rate};
    if (layout_.tail == 2) parts.push_back(at::zeros({1}, y.options()));  // Ito drift of kl_dB
    e.drift = at::cat(parts);
  }
  return e;
}

BlockSDE::Eval BlockSDE::evaluate(double t, const at::Tensor& y, bool with_dynamics) {
  const bool graph =
      at::GradMode::is_enabled() && (y.requires_grad() || (!params_.empty() && params_.front().requires_grad()));
  if (fused_ && graph) {
    variable_list out = BlockFn::apply(this, t, with_dynamics, y, at::TensorList(params_));
    Eval e;
    if (with_dynamics) e.drift = out[0];
    e.g = out[1];
    if (estimator_ == Estimator::Stl) e.g_sg = out[2];
    return e;
  }
  Eval e = evaluate_raw(t, y, params_, with_dynamics, nullptr, nullptr, /*reference=*/graph);
  if (estimator_ == Estimator::Stl && graph) {
    // Autograd reference: the same function of w with the parameters under stop-gradient.
    e.g_sg = hypernet_->forward(detached(params_), w_of(y), t, nullptr);
  }
  return e;
}

at::Tensor BlockSDE::correction(double t, const at::Tensor& w) {
  const std::vector<at::Tensor> params = estimator_ == Estimator::Stl ? detached(params_) : params_;
  return -0.5 * hypernet_->trace_jacobian(params, w, t);
}

at::Tensor BlockSDE::drift(double t, const at::Tensor& y) {
  Eval e = evaluate(t, y, true);
  last_.y = y;
  last_.version = y._version();
  last_.t = t;
  last_.grad_mode = at::GradMode::is_enabled();
  last_.g = e.g;
  last_.g_sg = e.g_sg;
  at::Tensor f = e.drift;
  if (sde_type() == sde::SdeType::Stratonovich && estimator_ != Estimator::Ckl) {
    f = f + last_entry(correction(t, w_of(y)), layout_.size());
  }
  return f;
}

at::Tensor BlockSDE::diffusion(double, const at::Tensor&) {
  throw sde::invalid_argument("the SDE-BNN block defines diffusion_prod only (its noise acts on w alone)");
}

at::Tensor BlockSDE::diffusion_prod(double t, const at::Tensor& y, const at::Tensor& dW) {
  const BlockLayout& L = layout_;
  if (!hypernet_) return at::zeros({L.size()}, y.options());
  if (estimator_ == Estimator::Ckl) {
    at::Tensor out = at::zeros({L.size()}, y.options());
    out.narrow(0, L.nh, L.w_dim).copy_(dW).mul_(sigma_);
    return out;
  }
  at::Tensor g;
  const bool hit = last_.y.defined() && last_.y.unsafeGetTensorImpl() == y.unsafeGetTensorImpl() &&
                   last_.version == y._version() && last_.t == t && last_.grad_mode == at::GradMode::is_enabled();
  if (hit) {
    g = estimator_ == Estimator::Stl ? last_.g_sg : last_.g;
  } else {
    Eval e = evaluate(t, y, false);
    g = estimator_ == Estimator::Stl ? e.g_sg : e.g;
  }
  const at::Tensor kl_db = (at::dot(g, dW) * (1.0 / sigma_)).reshape({1});
  return at::cat({at::zeros({L.nh}, y.options()), dW * sigma_, at::zeros({1}, y.options()), kl_db});
}

at::Tensor BlockSDE::ito_correction(double t, const at::Tensor& y) {
  if (estimator_ == Estimator::Ckl) return at::zeros_like(y);
  return last_entry(correction(t, w_of(y)), layout_.size());
}

std::vector<int64_t> BlockSDE::brownian_shape(const at::Tensor&) const { return {layout_.w_dim}; }

void BlockSDE::check_state(const at::Tensor& y0) const {
  if (y0.dim() != 1 || y0.numel() != layout_.size()) {
    throw sde::invalid_argument("Expected the SDE-BNN block state of shape [" + std::to_string(layout_.size()) +
                                "] but received " + shape_string(y0.sizes()));
  }
  if (y0.scalar_type() != options_.dtype().toScalarType()) {
    throw sde::invalid_argument("the SDE-BNN block state's dtype differs from the model's");
  }
}

}  // namespace bnn
