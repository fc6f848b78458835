// An SDE-BNN's state by name, as checkpoints hold it: parameters, Adam's moments and step, the
// EMA and the random streams (names and layout unchanged since the first checkpoints).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <map>

#include "bnn/block_sde.h"
#include "bnn/model.h"
#include "sde/errors.h"

namespace bnn {

namespace {
at::Tensor generator_state(at::Generator& gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state().to(at::kDouble);
}
}  // namespace

NamedTensors BnnModel::state() const {
  NamedTensors s;
  for (const auto& [name, p] : params_) s.emplace_back(name, p.detach());
  s.emplace_back("adam.step", at::full({1}, optimizer_->step_count(), at::TensorOptions().dtype(at::kDouble)));
  for (auto& named : optimizer_->state()) s.push_back(std::move(named));
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
      throw sde::invalid_argument("state: tensor '" + name + "' has shape " + shape_string(t.sizes()) +
                                  " but the model expects " + shape_string(it->second.sizes()));
    }
    if (!at::isfinite(t).all().item<bool>())
      throw sde::invalid_argument("state: tensor '" + name + "' holds non-finite values");
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
      optimizer_->set_step_count(t.to(at::kDouble).item<double>());
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
