#include "sde/mlp.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "sde/dense.h"

namespace sde {

int64_t MlpShape::offset(int64_t j) const {
  int64_t off = 0;
  for (int64_t l = 0; l < j; ++l) off += sizes[l + 1] * (fan_in(l) + 1);
  return off;
}

std::vector<std::vector<int64_t>> MlpShape::parameter_shapes() const {
  std::vector<std::vector<int64_t>> shapes;
  for (int64_t j = 0; j < layers(); ++j) {
    shapes.push_back({sizes[j + 1], fan_in(j)});
    shapes.push_back({sizes[j + 1]});
  }
  return shapes;
}

at::Tensor fan_in_uniform(int64_t n, int64_t fan_in, at::Generator& gen, const at::TensorOptions& options) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return at::empty({n}, options.device(c10::kCPU)).uniform_(-bound, bound, gen);
}

// ---- ATen backend ----

MlpWeights MlpWeights::of_list(const std::vector<at::Tensor>& params) {
  MlpWeights w;
  for (size_t j = 0; j + 1 < params.size(); j += 2) {
    w.W.push_back(params[j]);
    w.b.push_back(params[j + 1]);
  }
  return w;
}

MlpWeights MlpWeights::of_flat(const MlpShape& shape, const at::Tensor& flat) {
  MlpWeights w;
  for (int64_t j = 0; j < shape.layers(); ++j) {
    const int64_t out = shape.sizes[j + 1], fan = shape.fan_in(j), off = shape.offset(j);
    w.W.push_back(flat.narrow(0, off, out * fan).view({out, fan}));
    w.b.push_back(flat.narrow(0, off + out * fan, out));
  }
  return w;
}

at::Tensor mlp_forward(const MlpShape& shape, const MlpWeights& w, double t, const at::Tensor& x, MlpCache* cache) {
  std::optional<at::NoGradGuard> no_grad;
  if (cache) no_grad.emplace();
  at::Tensor a = x;
  const int64_t n = shape.layers();
  for (int64_t j = 0; j < n; ++j) {
    if (shape.has_time(j)) a = at::cat({a, at::full({a.size(0), 1}, t, a.options())}, 1);
    if (cache) cache->push_back(a);
    at::Tensor z = at::addmm(w.b[j], a, w.W[j].t());
    if (j + 1 == n) return z;
    a = activate(shape.activation, z);
  }
  return a;
}

namespace {
void write_or_set(at::Tensor& target, const at::Tensor& value) {
  if (target.defined()) {
    target.copy_(value);
  } else {
    target = value;
  }
}
}  // namespace

at::Tensor mlp_vjp(const MlpShape& shape, const MlpWeights& w, const MlpCache& cache, const at::Tensor& v, MlpGrads* grads) {
  at::NoGradGuard no_grad;
  const int64_t n = shape.layers();
  if (grads) {
    grads->W.resize(n);
    grads->b.resize(n);
    grads->deltas.resize(n);
  }
  at::Tensor delta = v;
  for (int64_t j = n - 1; j >= 0; --j) {
    const at::Tensor& a = cache[j];
    if (grads && grads->deltas_only) {
      grads->deltas[j] = delta;
    } else if (grads) {
      write_or_set(grads->W[j], at::mm(delta.t(), a));
      write_or_set(grads->b[j], delta.sum(0));
    }
    at::Tensor d = at::mm(delta, w.W[j]);
    if (shape.has_time(j)) d = d.narrow(1, 0, shape.sizes[j]);
    if (j == 0) return d;
    delta = activation_backward(shape.activation, d, shape.has_time(j) ? a.narrow(1, 0, shape.sizes[j]) : a);
  }
  return delta;
}

// ---- raw CPU backend ----

namespace {
template <typename T>
at::Tensor wrap(const T* p, at::IntArrayRef shape, at::IntArrayRef strides) {
  return at::from_blob(const_cast<T*>(p), shape, strides, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}
// Products at least this large (multiply-adds) go to BLAS: below it the call costs more than the loops.
constexpr int64_t kBlasMacs = int64_t(1) << 18;
}  // namespace

template <typename T>
typename MlpKernel<T>::Weights MlpKernel<T>::weights(const MlpShape& shape, const T* flat) {
  Weights w;
  for (int64_t j = 0; j < shape.layers(); ++j) {
    w.W.push_back(flat + shape.offset(j));
    w.b.push_back(flat + shape.offset(j) + shape.sizes[j + 1] * shape.fan_in(j));
  }
  return w;
}

template <typename T>
typename MlpKernel<T>::Weights MlpKernel<T>::weights(const std::vector<at::Tensor>& params) {
  Weights w;
  for (size_t j = 0; j + 1 < params.size(); j += 2) {
    w.W.push_back(params[j].data_ptr<T>());
    w.b.push_back((params[j + 1]).data_ptr<T>());
  }
  return w;
}

template <typename T>
typename MlpKernel<T>::Grads MlpKernel<T>::into(const MlpShape& shape, T* flat, typename Grads::Mode mode) {
  Grads g;
  g.mode = mode;
  for (int64_t j = 0; j < shape.layers(); ++j) {
    g.W.push_back(flat + shape.offset(j));
    g.b.push_back(flat + shape.offset(j) + shape.sizes[j + 1] * shape.fan_in(j));
  }
  return g;
}

template <typename T>
MlpKernel<T>::MlpKernel(const MlpShape& shape, int64_t batch, int64_t slots, BufferPool& pool, const at::TensorOptions& options)
    : shape_(shape), batch_(batch), options_(options) {
  const int64_t n = shape.layers();
  int64_t widest = 0, widest_matrix = 0;
  for (int64_t j = 0; j < n; ++j) {
    inputs_.push_back(pool.get({slots, input_size(j)}, options));
    if (j + 1 < n) slopes_.push_back(pool.get({slots, batch * shape.sizes[j + 1]}, options));
    widest = std::max({widest, shape.fan_in(j), shape.sizes[j + 1]});
    widest_matrix = std::max(widest_matrix, shape.sizes[j] * shape.sizes[j + 1]);
  }
  widest_matrix = std::max(widest_matrix, widest);
  scratch_ = pool.get({2 * batch * widest + widest_matrix + widest}, options);
  cur_ = scratch_.data_ptr<T>();
  next_ = cur_ + batch * widest;
  wt_ = next_ + batch * widest;
  bias_ = wt_ + widest_matrix;
}

template <typename T>
int64_t MlpKernel<T>::input_size(int64_t j) const {
  return batch_ == 1 ? shape_.fan_in(j) : batch_ * shape_.sizes[j];
}

template <typename T>
const T* MlpKernel<T>::input(int64_t slot, int64_t j) const {
  return inputs_[j].data_ptr<T>() + slot * input_size(j);
}

template <typename T>
bool MlpKernel<T>::blas(int64_t j) const {
  return batch_ > 1 && batch_ * shape_.sizes[j] * shape_.sizes[j + 1] >= kBlasMacs;
}

// z [batch, out] = a W_j^T + b_j (+ t W_j[:, in]).
template <typename T>
void MlpKernel<T>::layer(const Weights& w, int64_t j, double t, const T* a, T* z) {
  const int64_t in = shape_.sizes[j], out = shape_.sizes[j + 1], fan = shape_.fan_in(j);
  if (batch_ == 1) {  // a holds t already
    dense::gemv(out, fan, w.W[j], a, w.b[j], z);
    return;
  }
  const T* bias = w.b[j];
  if (shape_.has_time(j)) {
    for (int64_t o = 0; o < out; ++o) bias_[o] = w.b[j][o] + static_cast<T>(t) * w.W[j][o * fan + in];
    bias = bias_;
  }
  if (blas(j)) {
    at::Tensor Z = wrap(z, {batch_, out}, {out, 1});
    at::addmm_out(Z, wrap(bias, {out}, {1}), wrap(a, {batch_, in}, {in, 1}), wrap(w.W[j], {in, out}, {1, fan}));
    return;
  }
  for (int64_t o = 0; o < out; ++o) {  // W[:, :in]^T, contiguous, for the row-broadcast loops
    for (int64_t i = 0; i < in; ++i) wt_[i * out + o] = w.W[j][o * fan + i];
  }
  dense::mm_bias(batch_, in, out, a, wt_, bias, static_cast<const T*>(nullptr), T(0), z);
}

template <typename T>
void MlpKernel<T>::forward(const Weights& w, int64_t slot, double t, const T* x, T* out) {
  const int64_t n = shape_.layers();
  T* a0 = const_cast<T*>(input(slot, 0));
  std::memcpy(a0, x, sizeof(T) * batch_ * shape_.sizes[0]);
  if (batch_ == 1 && shape_.has_time(0)) a0[shape_.sizes[0]] = static_cast<T>(t);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t width = shape_.sizes[j + 1];
    T* z = j + 1 == n ? out : cur_;
    layer(w, j, t, input(slot, j), z);
    if (j + 1 == n) break;
    T* next = const_cast<T*>(input(slot, j + 1));
    activate_cpu(shape_.activation, batch_ * width, z, next, slopes_[j].data_ptr<T>() + slot * batch_ * width);
    if (batch_ == 1 && shape_.has_time(j + 1)) next[width] = static_cast<T>(t);
  }
}

// Layer j's VJP for its output cotangent delta: d_in = delta W_j[:, :in] (unless null) and the
// weights' gradients by `grads`.
template <typename T>
void MlpKernel<T>::layer_vjp(const Weights& w, int64_t j, double t, const T* a, const T* delta, T* d_in, const Grads& grads) {
  const int64_t in = shape_.sizes[j], out = shape_.sizes[j + 1], fan = shape_.fan_in(j);
  const bool add = grads.mode == Grads::Mode::Add;
  if (batch_ == 1) {
    if (grads.mode == Grads::Mode::Rows) std::memcpy(grads.rows[j], delta, sizeof(T) * out);
    if (grads.mode == Grads::Mode::Write || add) {  // delta (x) a, a with t
      for (int64_t o = 0; o < out; ++o) {
        T* row = grads.W[j] + o * fan;
        for (int64_t i = 0; i < fan; ++i) row[i] = (add ? row[i] : T(0)) + delta[o] * a[i];
        grads.b[j][o] = (add ? grads.b[j][o] : T(0)) + delta[o];
      }
    }
    if (d_in) {
      dense::gemv_t(out, fan, w.W[j], delta, static_cast<const T*>(nullptr), wt_);
      std::memcpy(d_in, wt_, sizeof(T) * in);
    }
    return;
  }
  if (grads.mode == Grads::Mode::Write || add) {
    // column sums (db of this call) into bias_, then dW[:, :in] = delta^T a and dW[:, in] = db t
    std::fill(bias_, bias_ + out, T(0));
    for (int64_t r = 0; r < batch_; ++r) dense::axpy(out, T(1), delta + r * out, bias_);
    T* dW = grads.W[j];
    if (blas(j)) {
      at::Tensor G = wrap(dW, {out, in}, {fan, 1});
      const at::Tensor D = wrap(delta, {out, batch_}, {1, out}), A = wrap(a, {batch_, in}, {in, 1});
      if (add) {
        G.addmm_(D, A);
      } else {
        at::mm_out(G, D, A);
      }
    } else if (out >= in) {  // G^T [in, out] along rows of length out, then transposed
      dense::mm_at_c(batch_, in, out, a, delta, wt_);
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) dW[o * fan + i] = (add ? dW[o * fan + i] : T(0)) + wt_[i * out + o];
      }
    } else if (add) {
      dense::mm_ct_a(batch_, in, out, a, delta, wt_, in);
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) dW[o * fan + i] += wt_[o * in + i];
      }
    } else {
      dense::mm_ct_a(batch_, in, out, a, delta, dW, fan);
    }
    for (int64_t o = 0; o < out; ++o) {
      if (shape_.has_time(j)) dW[o * fan + in] = (add ? dW[o * fan + in] : T(0)) + bias_[o] * static_cast<T>(t);
      grads.b[j][o] = (add ? grads.b[j][o] : T(0)) + bias_[o];
    }
  }
  if (!d_in) return;
  if (blas(j)) {
    at::Tensor Din = wrap(d_in, {batch_, in}, {in, 1});
    at::mm_out(Din, wrap(delta, {batch_, out}, {out, 1}), wrap(w.W[j], {out, in}, {fan, 1}));
  } else {
    dense::mm_back(batch_, in, out, delta, w.W[j], fan, d_in);
  }
}

template <typename T>
void MlpKernel<T>::vjp(const Weights& w, int64_t slot, double t, const T* v, T* dx, const Grads& grads) {
  const int64_t n = shape_.layers();
  std::memcpy(cur_, v, sizeof(T) * batch_ * shape_.sizes[n]);
  for (int64_t j = n - 1; j >= 0; --j) {
    T* d_in = j == 0 ? dx : next_;
    layer_vjp(w, j, t, input(slot, j), cur_, d_in, grads);
    if (j == 0) break;
    const int64_t m = batch_ * shape_.sizes[j];
    const T* s = (slopes_[j - 1]).data_ptr<T>() + slot * m;
    for (int64_t i = 0; i < m; ++i) next_[i] *= s[i];
    std::swap(cur_, next_);
  }
}

template class MlpKernel<float>;
template class MlpKernel<double>;

}  // namespace sde
