// The conv dynamics of an SDE-BNN block: two 3x3 convolutions with t as a constant channel, the
// kernels and biases slices of w. CPU: the shifted sums of conv_kernels.h, image by image; other
// devices: GEMMs over shifted copies (im2col).
#pragma once
#include <mutex>

#include "bnn/dynamics.h"

namespace bnn {

// conv3x3(cat[h, t] : C+1 -> hidden, pad 1) act conv3x3(cat[., t] : hidden+1 -> C, pad 1);
// kernels [out, in, 3, 3] then biases, as slices of w (PyTorch's layouts). t is a constant
// channel inside the image and zero in the padding, exactly as cat-then-pad would give.
// In the state layout a 3x3 tap is a fixed column offset: on CPU both convolutions and their VJPs
// are the shifted sums of conv_kernels.h, image by image in parallel; on other devices
// GEMMs over shifted copies (im2col).
class ConvDynamics : public Dynamics {
 public:
  ConvDynamics(int64_t channels, int64_t height, int64_t width_px, int64_t hidden, Activation activation);
  int64_t w_dim() const override { return w_dim_; }
  int64_t state_numel(int64_t batch) const override { return c_ * batch * (h_ + 2) * (w_ + 2); }
  at::Tensor to_state(const at::Tensor& h) const override;
  at::Tensor from_state(const at::Tensor& flat, int64_t batch) const override;
  at::Tensor forward(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache) const override;
  at::Tensor reference(double t, const at::Tensor& h, const at::Tensor& w) const override;
  std::pair<at::Tensor, at::Tensor> vjp(double t, const at::Tensor& w, const Cache& cache,
                                        const at::Tensor& v) const override;
  std::unique_ptr<DynamicsKernel<float>> kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                float) const override;
  std::unique_ptr<DynamicsKernel<double>> kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                 double) const override;
  // The same into the caller's contiguous buffers (out, dh: state_numel; dw: w_dim), as the fast
  // solver steps: no allocation and no copy per evaluation.
  void forward_into(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache, at::Tensor& out) const;
  void vjp_into(double t, const at::Tensor& w, const Cache& cache, const at::Tensor& v, at::Tensor& dh,
                at::Tensor& dw) const;
  // forward_into and vjp_into at one point, for a cotangent known beforehand (the adjoint's step):
  // on CPU image by image, the activations never leaving the worker's cache.
  void forward_vjp_into(double t, const at::Tensor& h, const at::Tensor& w, const at::Tensor& v, at::Tensor& out,
                        at::Tensor& dh, at::Tensor& dw) const;
  at::Tensor init_w0(W0Init init, double std, at::Generator& gen, const at::TensorOptions& options) const override;

 private:
  // 1 inside the images, 0 on the borders, [batch * (H+2) * (W+2)]; kept for the last batch size.
  at::Tensor mask(int64_t batch, const at::TensorOptions& options) const;
  // Buffers for the activations a forward pass keeps for its VJP ([hidden, columns] on CPU, with
  // the t row below on other devices): backprop keeps one per solver step; without the pool each
  // training step page-faulted all of them in again (147 MB for W2).
  static constexpr int64_t kPoolBytes = int64_t(512) << 20;

  int64_t c_, h_, w_, hidden_;
  Activation activation_;
  int64_t w_dim_;
  mutable std::mutex mask_mutex_;
  mutable at::Tensor mask_;
  mutable int64_t mask_batch_ = -1;
  mutable sde::BufferPool pool_{kPoolBytes};
};

}  // namespace bnn
