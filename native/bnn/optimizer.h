// The SDE-BNN's optimiser: global gradient-norm clipping, Adam (PyTorch's update, bias-corrected)
// and an EMA of the parameters. One implementation with two backends: two passes over raw CPU
// memory (one reading the gradients, one updating; cloned per ISA) where every tensor is a
// contiguous CPU tensor of one float dtype, ATen ops otherwise (other devices). On W1 (166k
// parameters) ATen's ~8 ops per tensor and their temporaries cost ~0.8 ms a step.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bnn {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct AdamConfig {
  double beta1, beta2, eps;
  double clip;  // global gradient-norm clipping; 0: off
  double ema;   // EMA decay of the parameters; 0: off
};

class Optimizer {
 public:
  Optimizer(const NamedTensors& params, const AdamConfig& config);

  // One update of every parameter with a .grad at learning rate lr; returns the gradient norm
  // before clipping (grad_norm: already computed on the device, as graph_step.cpp does). Throws
  // ERR_NUMERICAL, changing nothing, when the gradient is not finite.
  double step(double lr, std::optional<double> grad_norm = std::nullopt);

  // The norm of every .grad together, a float64 scalar on the parameters' device (no host read).
  at::Tensor gradient_norm() const;
  bool has_ema() const { return !ema_.empty(); }
  const NamedTensors& ema() const { return ema_; }
  // The checkpoint's tensors (views of the live state, written by set_state through them):
  // "adam.exp_avg.<name>", "adam.exp_avg_sq.<name>", "ema.<name>"; the step count apart.
  NamedTensors state() const;
  double step_count() const { return step_; }
  void set_step_count(double step) { step_ = step; }

 private:
  bool raw_cpu() const;

  NamedTensors params_, m_, v_, ema_;
  AdamConfig config_;
  double step_ = 0;
};

}  // namespace bnn
