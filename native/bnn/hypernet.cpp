#include "bnn/hypernet.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "sde/dense.h"
#include "sde/errors.h"

namespace bnn {

Hypernet::Hypernet(int64_t w_dim, std::vector<int64_t> hidden, Activation activation) {
  if (hidden.empty()) throw sde::invalid_argument("Expected at least one hidden width for hypernet.hidden");
  shape_.sizes.push_back(w_dim);
  shape_.sizes.insert(shape_.sizes.end(), hidden.begin(), hidden.end());
  shape_.sizes.push_back(w_dim);
  shape_.activation = activation;
  shape_.time = sde::TimeInput::First;
}

std::vector<at::Tensor> Hypernet::init(at::Generator& gen, const at::TensorOptions& options) const {
  const auto cpu = options.device(c10::kCPU);
  std::vector<at::Tensor> params;
  const int64_t n = shape_.layers();
  for (int64_t j = 0; j < n; ++j) {
    const int64_t out = shape_.sizes[j + 1], in = shape_.fan_in(j);
    if (j + 1 == n) {  // zero: the posterior starts equal to the prior, KL = 0
      params.push_back(at::zeros({out, in}, cpu));
      params.push_back(at::zeros({out}, cpu));
    } else {
      params.push_back(sde::fan_in_uniform(out * in, in, gen, cpu).view({out, in}));
      params.push_back(sde::fan_in_uniform(out, in, gen, cpu));
    }
  }
  return params;
}

at::Tensor Hypernet::forward(const std::vector<at::Tensor>& params, const at::Tensor& w, double t,
                             sde::MlpCache* cache) const {
  return sde::mlp_forward(shape_, sde::MlpWeights::of_list(params), t, w.unsqueeze(0), cache).view({-1});
}

std::pair<std::vector<at::Tensor>, at::Tensor> Hypernet::vjp(const std::vector<at::Tensor>& params,
                                                             const sde::MlpCache& cache, const at::Tensor& vp,
                                                             const at::Tensor& vx, GradBank* bank) const {
  const sde::MlpWeights weights = sde::MlpWeights::of_list(params);
  sde::MlpGrads grads;
  grads.deltas_only = bank != nullptr;
  at::Tensor dw = sde::mlp_vjp(shape_, weights, cache, vp.unsqueeze(0), &grads);
  if (vx.defined()) dw = dw + sde::mlp_vjp(shape_, weights, cache, vx.unsqueeze(0), nullptr);
  std::vector<at::Tensor> d_params(params.size());
  const int64_t n = shape_.layers();
  if (bank) {
    bank->rows.resize(n);
    bank->inputs.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      const at::Tensor row = grads.deltas[j].select(0, 0);
      bank->rows[j].push_back(j == n - 1 ? row.clone() : row);  // the last layer's may alias autograd's buffer
      bank->inputs[j].push_back(cache[j].select(0, 0));
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      d_params[2 * j] = grads.W[j];
      d_params[2 * j + 1] = grads.b[j];
    }
  }
  return {d_params, dw.view({-1})};
}

at::Tensor Hypernet::trace_jacobian(const std::vector<at::Tensor>& params, const at::Tensor& w, double t) const {
  // d g / d w = W_{L-1} D_{L-2} ... W_1 D_0 W_0w with D_j = diag(act'(z_j)) and W_0w the w
  // columns of W_0. By the cyclic property tr = tr(M P), M = W_0w W_{L-1} (small), and
  // P = D_{L-2} W_{L-2} ... W_1 D_0, a product of small matrices.
  const int64_t n = shape_.layers();
  at::Tensor a = at::cat({w, at::full({1}, t, w.options())});
  std::vector<at::Tensor> slopes;
  for (int64_t j = 0; j + 1 < n; ++j) {
    at::Tensor z =
        at::addmv(params[2 * j + 1], params[2 * j], a).to(w.scalar_type());  // bf16 autocast: back to w's dtype
    a = sde::activate(shape_.activation, z);
    slopes.push_back(sde::activation_backward(shape_.activation, at::ones_like(z), a));
  }
  const at::Tensor w0 = params[0].narrow(1, 0, w_dim());
  const at::Tensor& wl = params[2 * (n - 1)];
  if (n == 2) return (slopes[0] * (w0 * wl.t()).sum(1)).sum();
  at::Tensor m = at::mm(w0, wl).to(w.scalar_type());
  at::Tensor p = at::diag(slopes[0]);
  for (int64_t j = 1; j + 1 < n; ++j) p = slopes[j].unsqueeze(1) * at::mm(params[2 * j], p).to(w.scalar_type());
  return (m * p.t()).sum();
}

std::pair<at::Tensor, at::Tensor> bank_product(const at::Tensor& rows, const at::Tensor& inputs, double sign) {
  at::NoGradGuard no_grad;
  const int64_t K = rows.size(0), out = rows.size(1), in = inputs.size(1);
  const bool raw = rows.is_cpu() && inputs.is_cpu() && rows.is_contiguous() && inputs.is_contiguous() &&
                   rows.scalar_type() == inputs.scalar_type() &&
                   (rows.scalar_type() == at::kFloat || rows.scalar_type() == at::kDouble);
  if (!raw) {
    at::Tensor dW = at::mm(rows.t(), inputs).to(rows.scalar_type()), db = rows.sum(0);  // bf16 autocast: back
    if (sign != 1.0) {
      dW.mul_(sign);
      db.mul_(sign);
    }
    return {dW, db};
  }
  at::Tensor dW = at::empty({out, in}, rows.options()), db = at::zeros({out}, rows.options());
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "bank_product", [&] {
    const scalar_t* r = rows.data_ptr<scalar_t>();
    scalar_t* w = dW.data_ptr<scalar_t>();
    scalar_t* b = db.data_ptr<scalar_t>();
    sde::dense::gemm(out, in, K, r, 1, out, inputs.data_ptr<scalar_t>(), in, static_cast<const scalar_t*>(nullptr),
                     static_cast<const scalar_t*>(nullptr), scalar_t(0), w, in);  // rows^T inputs
    for (int64_t k = 0; k < K; ++k) sde::dense::axpy(out, scalar_t(1), r + k * out, b);
    if (sign != 1.0) {
      const auto s = static_cast<scalar_t>(sign);
      for (int64_t i = 0; i < out * in; ++i) w[i] *= s;
      for (int64_t o = 0; o < out; ++o) b[o] *= s;
    }
  });
  return {dW, db};
}

void GradBank::flush(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < rows.size(); ++j) {
    if (rows[j].empty()) continue;
    auto [dW, db] = bank_product(at::stack(rows[j]), at::stack(inputs[j]));
    for (auto [p, g] : {std::pair<at::Tensor, at::Tensor>{params[2 * j], dW}, {params[2 * j + 1], db}}) {
      if (p.grad().defined()) {
        p.mutable_grad().add_(g);
      } else {
        p.mutable_grad() = g;
      }
    }
    rows[j].clear();
    inputs[j].clear();
  }
}

}  // namespace bnn
