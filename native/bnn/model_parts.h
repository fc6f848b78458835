// BnnModel's private parts, shared by model.cpp and graph_step.cpp.
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "bnn/block_run.h"
#include "bnn/model.h"
#include "sde/cuda_graph.h"

namespace bnn {

struct BnnModel::Forward {
  std::vector<std::shared_ptr<BlockRun>> runs;
  at::Tensor out, kl_path, kl_w0;
  // After backward: the banked hypernetwork gradients into the parameters' .grad.
  void flush(const std::vector<std::unique_ptr<Block>>& blocks) {
    for (size_t i = 0; i < runs.size(); ++i) {
      if (runs[i]->bank) runs[i]->bank->flush(blocks[i]->hyper_params);
    }
  }
  // The forward solves' evaluations and steps, the backward's evaluations, the time reached.
  void add_stats(int64_t& nfe, int64_t& nfe_backward, int64_t& steps, double& t_end) const {
    t_end = runs.empty() ? 0.0 : 1e300;
    for (const auto& r : runs) {
      nfe += r->forward.nfe;
      nfe_backward += r->backward.nfe;
      steps += r->forward.steps_accepted;
      t_end = std::min(t_end, r->t_end);
    }
  }
};

// config.cuda_graph's recorded training step (graph_step.cpp).
struct BnnModel::GraphedStep {
  explicit GraphedStep(const c10::Device& device) : graph(device) {}
  sde::CudaGraph graph;
  int64_t batch = 0;
  at::Tensor x, target, kl_weight;  // the step's inputs, copied in before each replay
  at::Tensor summary;               // LossTerms::summary with the gradient norm appended
  LossResult counts;                // evaluations and steps: fixed steps make every replay's the same
};

}  // namespace bnn
