// The SDE-BNN's training step as a CUDA graph (config.cuda_graph). Small models are launch-bound
// on a GPU: a step is thousands of kernels, each launched from the host. Here the forward and
// backward pass is recorded once per batch size and replayed with one launch:
//   - the noise lives in fixed memory, drawn on the device before each step: each block's grid
//     increments (sde::make_grid_brownian) and q(w_0)'s normals, from the device's generator
//     reseeded per block and step by the model's own generator (a run is reproducible by its seed,
//     on one kind of GPU; its paths differ from an eager or CPU run's);
//   - the inputs are copied into fixed tensors; the loss summary and the gradient norm come back
//     in one read after the replay; clipping, Adam and the EMA run outside the graph.
// The first step at a batch size runs eagerly on the capture's side stream (which also warms
// cuBLAS and cuDNN up), takes its update, then captures the same pass for the next steps. beta is
// an input too (a KL warm-up changes it every step).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <mutex>

#include "bnn/model_parts.h"

namespace bnn {

void BnnModel::draw_static_noise(at::Generator& gen) {
  const int64_t steps = config_.solver.steps;
  for (auto& b : blocks_) {
    const uint64_t seed = draw_seed(gen);  // one per block, as an eager step draws
    if (b->hypernet && !b->noise.defined()) b->noise = at::empty({steps, b->mu.numel()}, options_);
    if (config_.w0_gaussian && !b->eps.defined()) b->eps = at::empty({b->mu.numel()}, options_);
    if (!b->noise.defined() && !b->eps.defined()) continue;  // a static point-weight block draws nothing
    {
      std::lock_guard<std::mutex> lock(noise_gen_.mutex());
      noise_gen_.set_current_seed(seed);
    }
    // W(t_{k+1}) - W(t_k) ~ N(0, dt): the grid's steps are 1/steps long up to rounding
    if (b->noise.defined()) b->noise.normal_(0.0, std::sqrt(1.0 / static_cast<double>(steps)), noise_gen_);
    if (b->eps.defined()) b->eps.normal_(0.0, 1.0, noise_gen_);
  }
}

StepResult BnnModel::graphed_train_step(const at::Tensor& xin, const at::Tensor& target, double lr, double beta) {
  const ModelRoute plan = route(true);
  if (!plan.graph) throw std::logic_error("graphed_train_step: a CUDA model always builds an autograd graph");
  if (!noise_gen_.defined()) noise_gen_ = at::globalContext().defaultGenerator(options_.device()).clone();
  draw_static_noise(train_gen_);
  // The forward and backward pass on the fixed inputs: the summary (with the gradient norm) and the
  // counts; the gradients are left in .grad.
  const auto pass = [this, &plan](GraphedStep& g) {
    at::AutoGradMode enable(true);
    Forward f = forward(g.x, train_gen_, plan, true, nullptr, false, /*static_noise=*/true);
    const LossTerms terms = loss_terms(f, g.target, g.kl_weight);
    torch::autograd::backward({terms.total});
    f.flush(blocks_);
    LossResult counts;
    f.add_stats(counts.nfe, counts.nfe_backward, counts.steps, counts.t_end);
    g.counts = counts;
    at::NoGradGuard no_grad;
    g.summary = at::cat({terms.summary, optimizer_->gradient_norm().reshape({1})});
  };

  const bool fresh = !graphed_ || graphed_->batch != xin.size(0);
  GraphedStep* g = graphed_.get();
  std::unique_ptr<GraphedStep> next;
  if (fresh) {
    graphed_.reset();  // the old graph's memory goes back to the allocator first
    next = std::make_unique<GraphedStep>(options_.device());
    g = next.get();
    g->batch = xin.size(0);
    g->x = xin.clone();
    g->target = target.clone();
    g->kl_weight = at::full({}, beta / config_.n_train, options_);
    zero_grad();
    g->graph.warm_up([&] { pass(*g); });
  } else {
    g->x.copy_(xin);
    g->target.copy_(target);
    g->kl_weight.fill_(beta / config_.n_train);
    g->graph.replay();
  }

  const at::Tensor summary = g->summary.to(at::kCPU);
  StepResult r;
  static_cast<LossResult&>(r) = read_summary(summary.narrow(0, 0, 5));
  r.nfe = g->counts.nfe;
  r.nfe_backward = g->counts.nfe_backward;
  r.steps = g->counts.steps;
  r.t_end = g->counts.t_end;
  const double grad_norm = summary.data_ptr<double>()[5];
  check_loss(r);
  if (gradient_hook_) {
    at::NoGradGuard no_grad;
    gradient_hook_(params_);
  }
  // With a hook the gradients changed (averaged across processes): their norm is read again.
  r.grad_norm = optimizer_->step(lr, gradient_hook_ ? std::nullopt : std::optional<double>(grad_norm));

  if (fresh) {
    // Capture the same pass for the next steps: .grad and the summary become the graph's memory.
    zero_grad();
    g->graph.capture([&] { pass(*g); });
    graphed_ = std::move(next);
  }
  return r;
}

}  // namespace bnn
