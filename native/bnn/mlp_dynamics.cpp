#include "bnn/mlp_dynamics.h"

#include <ATen/ATen.h>

namespace bnn {

MlpDynamics::MlpDynamics(int64_t d, std::vector<int64_t> hidden, Activation activation, bool time_input) {
  shape_.sizes.push_back(d);
  shape_.sizes.insert(shape_.sizes.end(), hidden.begin(), hidden.end());
  shape_.sizes.push_back(d);
  shape_.activation = activation;
  shape_.time = time_input ? sde::TimeInput::Every : sde::TimeInput::None;
}

at::Tensor MlpDynamics::forward(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache) const {
  return sde::mlp_forward(shape_, sde::MlpWeights::of_flat(shape_, w), t, h.view({-1, d()}), cache).view({-1});
}

std::pair<at::Tensor, at::Tensor> MlpDynamics::vjp(double, const at::Tensor& w, const Cache& cache,
                                                   const at::Tensor& v) const {
  at::Tensor dw = at::empty({w_dim()}, w.options());
  const sde::MlpWeights into = sde::MlpWeights::of_flat(shape_, dw);
  sde::MlpGrads grads;
  grads.W = into.W;
  grads.b = into.b;
  const at::Tensor dh = sde::mlp_vjp(shape_, sde::MlpWeights::of_flat(shape_, w), cache, v.view({-1, d()}), &grads);
  return {dh.reshape({-1}), dw};
}

namespace {

// The raw form: an MlpKernel whose weights and weight gradients are slices of w and dw.
template <typename T>
class MlpDynamicsKernel : public DynamicsKernel<T> {
 public:
  MlpDynamicsKernel(const sde::MlpShape& shape, int64_t batch, int64_t slots, sde::BufferPool& pool)
      : shape_(shape), mlp_(shape, batch, slots, pool, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value)) {}

  void forward(int64_t slot, double t, const T* h, const T* w, T* fh, bool) override {
    mlp_.forward(sde::MlpKernel<T>::weights(shape_, w), slot, t, h, fh);
  }

  void vjp(int64_t slot, double t, const T* w, const T* v, T* dh, T* dw) override {
    using Kernel = sde::MlpKernel<T>;
    mlp_.vjp(Kernel::weights(shape_, w), slot, t, v, dh, Kernel::into(shape_, dw, Kernel::Grads::Mode::Write));
  }

 private:
  sde::MlpShape shape_;
  sde::MlpKernel<T> mlp_;
};

}  // namespace

std::unique_ptr<DynamicsKernel<float>> MlpDynamics::kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                           float) const {
  return std::make_unique<MlpDynamicsKernel<float>>(shape_, batch, slots, pool);
}
std::unique_ptr<DynamicsKernel<double>> MlpDynamics::kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                            double) const {
  return std::make_unique<MlpDynamicsKernel<double>>(shape_, batch, slots, pool);
}

at::Tensor MlpDynamics::init_w0(W0Init init, double std, at::Generator& gen, const at::TensorOptions& options) const {
  const auto cpu = options.device(c10::kCPU);
  if (init == W0Init::Normal) return at::randn({w_dim()}, gen, cpu) * std;
  std::vector<at::Tensor> parts;
  for (int64_t l = 0; l < shape_.layers(); ++l) {
    const int64_t fan = shape_.fan_in(l), out = shape_.sizes[l + 1];
    parts.push_back(sde::fan_in_uniform(out * fan, fan, gen, cpu));
    parts.push_back(sde::fan_in_uniform(out, fan, gen, cpu));
  }
  return at::cat(parts);
}

}  // namespace bnn
