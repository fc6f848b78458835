#include "sde/neural.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "sde/errors.h"

namespace sde {

Activation parse_activation(const std::string& name) {
  if (name == "tanh") return Activation::Tanh;
  if (name == "softplus") return Activation::Softplus;
  if (name == "relu") return Activation::Relu;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "identity" || name == "none") return Activation::Identity;
  throw invalid_argument("Expected 'tanh', 'softplus', 'relu', 'sigmoid' or 'identity' for activation but received '" + name + "'");
}

at::Tensor activate(Activation a, const at::Tensor& x) {
  switch (a) {
    case Activation::Tanh: return at::tanh(x);
    case Activation::Softplus: return at::softplus(x);
    case Activation::Relu: return at::relu(x);
    case Activation::Sigmoid: return at::sigmoid(x);
    case Activation::Identity: return x;
  }
  return x;
}

Mlp::Mlp(int64_t in, int64_t out, const MlpSpec& spec, const at::TensorOptions& options, const std::string& prefix,
         at::Generator& gen)
    : spec_(spec), prefix_(prefix) {
  std::vector<int64_t> sizes{in + (spec.time_input ? 1 : 0)};
  sizes.insert(sizes.end(), spec.hidden.begin(), spec.hidden.end());
  sizes.push_back(out);
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    // PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn on CPU from the
    // spec's seed so that every device gets the same numbers.
    const double bound = 1.0 / std::sqrt(static_cast<double>(sizes[i]));
    auto cpu = options.device(c10::kCPU);
    weights_.push_back(at::empty({sizes[i + 1], sizes[i]}, cpu).uniform_(-bound, bound, gen).to(options.device()).requires_grad_(true));
    biases_.push_back(at::empty({sizes[i + 1]}, cpu).uniform_(-bound, bound, gen).to(options.device()).requires_grad_(true));
  }
}

at::Tensor Mlp::forward(double t, const at::Tensor& x) const {
  at::Tensor h = x;
  if (spec_.time_input) h = at::cat({h, at::full({h.size(0), 1}, t, h.options())}, 1);
  for (size_t i = 0; i < weights_.size(); ++i) {
    h = at::linear(h, weights_[i], biases_[i]);
    if (i + 1 < weights_.size()) h = activate(spec_.activation, h);
  }
  return h;
}

void Mlp::collect(std::vector<std::pair<std::string, at::Tensor>>& named) const {
  for (size_t i = 0; i < weights_.size(); ++i) {
    named.emplace_back(prefix_ + "." + std::to_string(i) + ".weight", weights_[i]);
    named.emplace_back(prefix_ + "." + std::to_string(i) + ".bias", biases_[i]);
  }
}

namespace {
at::TensorOptions options_of(const NeuralSdeSpec& spec) { return at::TensorOptions().dtype(spec.dtype).device(spec.device); }

int64_t diffusion_width(const NeuralSdeSpec& spec) {
  return spec.noise == NoiseType::General ? spec.d * spec.m : spec.d;
}

const NeuralSdeSpec& validated(const NeuralSdeSpec& spec) {
  if (spec.d < 1) throw invalid_argument("Expected positive integer for d");
  if (spec.noise == NoiseType::General && spec.m < 1) throw invalid_argument("Expected positive integer for m (general noise)");
  if (spec.diffusion_kind == DiffusionKind::ScaledTanh && spec.noise != NoiseType::Diagonal) {
    throw invalid_argument("diffusion 'scaled_tanh' needs noiseType 'diagonal'");
  }
  if (spec.diffusion_kind == DiffusionKind::Constant && spec.noise != NoiseType::Additive) {
    throw invalid_argument("diffusion 'constant' needs noiseType 'additive'");
  }
  if (spec.noise == NoiseType::Additive && spec.diffusion_kind == DiffusionKind::Mlp && !spec.diffusion.time_input) {
    throw invalid_argument("additive noise cannot depend on the state: use diffusion 'constant' or an MLP with timeInput");
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
    diffusion_net_ = std::make_unique<Mlp>(in, diffusion_width(spec), spec.diffusion, options_of(spec), "diffusion", gen_);
  } else {
    s_ = at::full({spec.d}, spec.diffusion_init, options_of(spec)).requires_grad_(true);
  }
}

at::Tensor NeuralSDE::drift(double t, const at::Tensor& y) { return drift_net_.forward(t, y); }

at::Tensor NeuralSDE::diffusion(double t, const at::Tensor& y) {
  switch (spec_.diffusion_kind) {
    case DiffusionKind::ScaledTanh:
      return at::sigmoid(s_) * at::tanh(y) + spec_.diffusion_offset;
    case DiffusionKind::Constant:
      return s_.expand_as(y);
    case DiffusionKind::Mlp:
      break;
  }
  at::Tensor input = spec_.noise == NoiseType::Additive ? y.narrow(1, 0, 0) : y;
  at::Tensor g = activate(spec_.diffusion_output, diffusion_net_->forward(t, input)) + spec_.diffusion_offset;
  switch (spec_.noise) {
    case NoiseType::Scalar: return g.unsqueeze(-1);
    case NoiseType::General: return g.view({y.size(0), spec_.d, spec_.m});
    default: return g;
  }
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

std::vector<at::Tensor> NeuralSDE::parameters() const {
  std::vector<at::Tensor> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

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
