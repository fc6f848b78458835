// The MLP dynamics of an SDE-BNN block: f_h(t, h; w) = Linear(d, hidden[0]) act ...
// Linear(hidden[-1], d), t appended to every layer's input when time_input, the weights (per
// layer [out, in (+1)] row-major, then the bias) slices of w. An MLP of sde/mlp.h.
#pragma once
#include "bnn/dynamics.h"

namespace bnn {

class MlpDynamics : public Dynamics {
 public:
  MlpDynamics(int64_t d, std::vector<int64_t> hidden, Activation activation, bool time_input);
  int64_t w_dim() const override { return shape_.numel(); }
  int64_t state_numel(int64_t batch) const override { return batch * d(); }
  at::Tensor to_state(const at::Tensor& h) const override { return h.reshape({-1}); }
  at::Tensor from_state(const at::Tensor& flat, int64_t batch) const override { return flat.view({batch, d()}); }
  at::Tensor forward(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache) const override;
  at::Tensor reference(double t, const at::Tensor& h, const at::Tensor& w) const override {
    return forward(t, h, w, nullptr);
  }
  std::pair<at::Tensor, at::Tensor> vjp(double t, const at::Tensor& w, const Cache& cache,
                                        const at::Tensor& v) const override;
  std::unique_ptr<DynamicsKernel<float>> kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                float) const override;
  std::unique_ptr<DynamicsKernel<double>> kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                 double) const override;
  at::Tensor init_w0(W0Init init, double std, at::Generator& gen, const at::TensorOptions& options) const override;
  int64_t d() const { return shape_.sizes.front(); }

 private:
  sde::MlpShape shape_;
};

}  // namespace bnn
