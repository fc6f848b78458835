#include "sde/mlp.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>

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

// The ATen form (other devices, autograd). Under bf16 autocast (cuda_math.h) the GEMMs run in bf16
// and their results return to the input's dtype, which the activations and VJPs then write.
at::Tensor mlp_forward(const MlpShape& shape, const MlpWeights& w, double t, const at::Tensor& x, MlpCache* cache) {
  std::optional<at::NoGradGuard> no_grad;
  if (cache) no_grad.emplace();
  at::Tensor a = x;
  const int64_t n = shape.layers();
  for (int64_t j = 0; j < n; ++j) {
    if (shape.has_time(j)) a = at::cat({a, at::full({a.size(0), 1}, t, a.options())}, 1);
    if (cache) cache->push_back(a);
    at::Tensor z = at::addmm(w.b[j], a, w.W[j].t()).to(x.scalar_type());
    if (j + 1 == n) return z;
    if (cache) {
      activate_into(shape.activation, z, z);
      a = z;
    } else {
      a = activate(shape.activation, z);
    }
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

at::Tensor mlp_vjp(const MlpShape& shape, const MlpWeights& w, const MlpCache& cache, const at::Tensor& v,
                   MlpGrads* grads) {
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
      write_or_set(grads->W[j], at::mm(delta.t(), a).to(v.scalar_type()));
      write_or_set(grads->b[j], delta.sum(0));
    }
    at::Tensor d = at::mm(delta, w.W[j]).to(v.scalar_type());
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
  return at::from_blob(const_cast<T*>(p), shape, strides,
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}
// Products of at least this many multiply-adds are split by rows between LibTorch's threads (each
// output element is one thread's, summed in order: no bit depends on the split).
constexpr int64_t kParallelMacs = int64_t(1) << 18;
// Weight matrices past this size go to BLAS: the engine's loops reread the weights for each tile
// of rows, from L2 while they fit; BLAS packs them. (Below it, OpenBLAS's own thread pool, which
// spins between calls, costs more than it saves: W5's products run faster on the loops.)
constexpr int64_t kBlasBytes = int64_t(512) << 10;

// dst[c * ld_dst + r] = (dst's +) src[r * ld_src + c] for r < rows, c < cols, in tiles: element
// by element, one side's accesses would each touch another cache line at these widths.
template <typename T>
void transpose(int64_t rows, int64_t cols, const T* src, int64_t ld_src, T* dst, int64_t ld_dst, bool add) {
  constexpr int64_t tile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += tile) {
    for (int64_t c0 = 0; c0 < cols; c0 += tile) {
      const int64_t r1 = std::min(rows, r0 + tile), c1 = std::min(cols, c0 + tile);
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = r0; r < r1; ++r)
          dst[c * ld_dst + r] = (add ? dst[c * ld_dst + r] : T(0)) + src[r * ld_src + c];
      }
    }
  }
}

template <typename F>
void split_rows(int64_t m, int64_t macs_per_row, const F& f) {
  if (m * macs_per_row < kParallelMacs) return f(0, m);
  at::parallel_for(0, m, std::max<int64_t>(1, kParallelMacs / 4 / macs_per_row), f);
}
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
MlpKernel<T>::MlpKernel(const MlpShape& shape, int64_t batch, int64_t slots, BufferPool& pool,
                        const at::TensorOptions& options)
    : shape_(shape), batch_(batch), options_(options) {
  const int64_t n = shape.layers();
  int64_t widest = 0, matrices = 0, biases = 0, deltas = 0;
  for (int64_t j = 0; j < n; ++j) {
    inputs_.push_back(pool.get({slots, input_size(j)}, options));
    if (j + 1 < n) slopes_.push_back(pool.get({slots, batch * shape.sizes[j + 1]}, options));
    widest = std::max({widest, shape.fan_in(j), shape.sizes[j + 1]});
    matrices += shape.sizes[j] * shape.sizes[j + 1];
    biases += shape.sizes[j + 1];
    if (j + 1 < n) deltas += batch * shape.sizes[j + 1];
  }
  scratch_ = pool.get({batch * widest + deltas + matrices + biases + widest}, options);
  z_ = scratch_.data_ptr<T>();
  deltas_ = z_ + batch * widest;
  wt_ = deltas_ + deltas;
  bias_ = wt_ + matrices;
  row_ = bias_ + biases;
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
  return batch_ > 1 && shape_.sizes[j] * shape_.sizes[j + 1] * static_cast<int64_t>(sizeof(T)) > kBlasBytes;
}

template <typename T>
bool MlpKernel<T>::by_rows() const {
  if (batch_ == 1) return false;
  for (int64_t j = 0; j < shape_.layers(); ++j) {
    if (blas(j)) return false;
  }
  return true;
}

// Runs rows(r0, r1) over the batch: in row blocks on LibTorch's threads where every layer runs on
// the engine's loops (rows are independent through the whole network), else at once.
template <typename T>
template <typename F>
void MlpKernel<T>::run_rows(const F& rows) const {
  if (!by_rows()) return rows(int64_t(0), batch_);
  int64_t macs = 0;
  for (int64_t j = 0; j < shape_.layers(); ++j) macs += shape_.sizes[j] * shape_.sizes[j + 1];
  split_rows(batch_, macs, rows);
}

template <typename T>
void MlpKernel<T>::forward(const Weights& w, int64_t slot, double t, const T* x, T* out) {
  const int64_t n = shape_.layers();
  // per layer: the bias with t's column folded in, and W[:, :in] transposed for the row loops
  std::vector<const T*> bias(n), Wt(n);
  T* bias_at = bias_;
  T* wt_at = wt_;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t in = shape_.sizes[j], width = shape_.sizes[j + 1], fan = shape_.fan_in(j);
    bias[j] = w.b[j];
    if (batch_ > 1 && shape_.has_time(j)) {  // batch 1 keeps t in its input instead
      for (int64_t o = 0; o < width; ++o) bias_at[o] = w.b[j][o] + static_cast<T>(t) * w.W[j][o * fan + in];
      bias[j] = bias_at;
    }
    Wt[j] = w.Wt.empty() ? nullptr : w.Wt[j];
    if (!Wt[j] && batch_ > 1 && !blas(j)) {
      transpose(width, in, w.W[j], fan, wt_at, width, false);
      Wt[j] = wt_at;
    }
    bias_at += width;
    wt_at += in * width;
  }
  run_rows([&](int64_t r0, int64_t r1) {
    const int64_t m = r1 - r0;
    T* a0 = const_cast<T*>(input(slot, 0)) + r0 * shape_.sizes[0];
    std::memcpy(a0, x + r0 * shape_.sizes[0], sizeof(T) * m * shape_.sizes[0]);
    if (batch_ == 1 && shape_.has_time(0)) a0[shape_.sizes[0]] = static_cast<T>(t);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t in = shape_.sizes[j], width = shape_.sizes[j + 1], fan = shape_.fan_in(j);
      const T* a = input(slot, j) + r0 * in;
      T* z = (j + 1 == n ? out : z_) + r0 * width;
      if (batch_ == 1) {  // a holds t already
        dense::gemv(width, fan, w.W[j], a, bias[j], z);
      } else if (blas(j)) {
        at::Tensor Z = wrap(z, {m, width}, {width, 1});
        at::addmm_out(Z, wrap(bias[j], {width}, {1}), wrap(a, {m, in}, {in, 1}), wrap(w.W[j], {in, width}, {1, fan}));
      } else {
        dense::gemm(m, width, in, a, in, 1, Wt[j], width, bias[j], static_cast<const T*>(nullptr), T(0), z, width);
      }
      if (j + 1 == n) break;
      T* next = const_cast<T*>(input(slot, j + 1)) + r0 * width;
      activate_cpu(shape_.activation, m * width, z, next, slopes_[j].data_ptr<T>() + (slot * batch_ + r0) * width);
      if (batch_ == 1 && shape_.has_time(j + 1)) next[width] = static_cast<T>(t);
    }
  });
}

template <typename T>
void MlpKernel<T>::vjp(const Weights& w, int64_t slot, double t, const T* v, T* dx, const Grads& grads) {
  const int64_t n = shape_.layers();
  // each layer's output cotangent: v for the last, deltas_ for the hidden ones
  std::vector<T*> delta(n);
  delta[n - 1] = const_cast<T*>(v);
  for (int64_t j = 0, off = 0; j + 1 < n; ++j) {
    delta[j] = deltas_ + off;
    off += batch_ * shape_.sizes[j + 1];
  }
  // the cotangents back through the layers, row by row: d_in = delta W[:, :in], times the slopes
  run_rows([&](int64_t r0, int64_t r1) {
    const int64_t m = r1 - r0;
    for (int64_t j = n - 1; j >= 0; --j) {
      const int64_t in = shape_.sizes[j], width = shape_.sizes[j + 1], fan = shape_.fan_in(j);
      T* d_in = j == 0 ? dx : delta[j - 1];
      if (!d_in) break;
      d_in += r0 * in;
      const T* d = delta[j] + r0 * width;
      if (batch_ == 1) {
        dense::gemv_t(width, fan, w.W[j], d, static_cast<const T*>(nullptr), row_);
        std::memcpy(d_in, row_, sizeof(T) * in);
      } else if (blas(j)) {
        at::Tensor Din = wrap(d_in, {m, in}, {in, 1});
        at::mm_out(Din, wrap(d, {m, width}, {width, 1}), wrap(w.W[j], {width, in}, {fan, 1}));
      } else {
        dense::gemm(m, in, width, d, width, 1, w.W[j], fan, static_cast<const T*>(nullptr),
                    static_cast<const T*>(nullptr), T(0), d_in, in);
      }
      if (j == 0) break;
      const T* s = slopes_[j - 1].data_ptr<T>() + (slot * batch_ + r0) * in;
      for (int64_t i = 0; i < m * in; ++i) d_in[i] *= s[i];
    }
  });
  for (int64_t j = 0; j < n; ++j) layer_grads(j, t, input(slot, j), delta[j], grads);
}

// Layer j's weight gradients from its input a and output cotangent delta, by `grads`.
template <typename T>
void MlpKernel<T>::layer_grads(int64_t j, double t, const T* a, const T* delta, const Grads& grads) {
  const int64_t in = shape_.sizes[j], out = shape_.sizes[j + 1], fan = shape_.fan_in(j);
  const bool add = grads.mode == Grads::Mode::Add;
  if (grads.mode == Grads::Mode::Rows) std::memcpy(grads.rows[j], delta, sizeof(T) * out);
  if (grads.mode != Grads::Mode::Write && !add) return;
  T* dW = grads.W[j];
  if (batch_ == 1) {  // delta (x) a, a with t
    for (int64_t o = 0; o < out; ++o) {
      T* row = dW + o * fan;
      for (int64_t i = 0; i < fan; ++i) row[i] = (add ? row[i] : T(0)) + delta[o] * a[i];
      grads.b[j][o] = (add ? grads.b[j][o] : T(0)) + delta[o];
    }
    return;
  }
  // column sums (db of this call) into row_, then dW[:, :in] = delta^T a and dW[:, in] = db t
  std::fill(row_, row_ + out, T(0));
  for (int64_t r = 0; r < batch_; ++r) dense::axpy(out, T(1), delta + r * out, row_);
  if (blas(j)) {
    at::Tensor G = wrap(dW, {out, in}, {fan, 1});
    const at::Tensor D = wrap(delta, {out, batch_}, {1, out}), A = wrap(a, {batch_, in}, {in, 1});
    if (add) {
      G.addmm_(D, A);
    } else {
      at::mm_out(G, D, A);
    }
  } else if (out >= in) {  // G^T = a^T delta [in, out], along rows of length out, then transposed
    split_rows(in, batch_ * out, [&](int64_t i0, int64_t i1) {
      dense::gemm(i1 - i0, out, batch_, a + i0, 1, in, delta, out, static_cast<const T*>(nullptr),
                  static_cast<const T*>(nullptr), T(0), wt_ + i0 * out, out);
    });
    transpose(in, out, static_cast<const T*>(wt_), out, dW, fan, add);
  } else {  // G = delta^T a [out, in], into dW directly or, to add, through wt_
    T* G = add ? wt_ : dW;
    const int64_t ld = add ? in : fan;
    split_rows(out, batch_ * in, [&](int64_t o0, int64_t o1) {
      dense::gemm(o1 - o0, in, batch_, delta + o0, 1, out, a, in, static_cast<const T*>(nullptr),
                  static_cast<const T*>(nullptr), T(0), G + o0 * ld, ld);
    });
    for (int64_t o = 0; add && o < out; ++o) {
      for (int64_t i = 0; i < in; ++i) dW[o * fan + i] += wt_[o * in + i];
    }
  }
  for (int64_t o = 0; o < out; ++o) {
    if (shape_.has_time(j)) dW[o * fan + in] = (add ? dW[o * fan + in] : T(0)) + row_[o] * static_cast<T>(t);
    grads.b[j][o] = (add ? grads.b[j][o] : T(0)) + row_[o];
  }
}

template class MlpKernel<float>;
template class MlpKernel<double>;

// ---- the raw backend behind tensors ----

struct MlpRawPass::Kernel {
  Kernel(const MlpShape& shape_, double t_, BufferPool& pool_) : shape(shape_), t(t_), pool(pool_) {}
  virtual ~Kernel() = default;
  // dx [batch, sizes[0]] and, with grads, the weights' gradients for v
  virtual void vjp(const at::Tensor& v, at::Tensor& dx, MlpGrads* grads) = 0;
  virtual at::Tensor input(int64_t j) const = 0;  // layer j's input, as the kernel keeps it
  MlpShape shape;
  double t;
  BufferPool& pool;
};

namespace {
template <typename T>
struct RawKernel final : MlpRawPass::Kernel {
  RawKernel(const MlpShape& shape_, const MlpWeights& w, double t_, int64_t batch_, BufferPool& pool_,
            const at::TensorOptions& options)
      : Kernel(shape_, t_, pool_), kernel(shape_, batch_, 1, pool_, options), batch(batch_) {
    for (size_t j = 0; j < w.W.size(); ++j) {
      weights.W.push_back(w.W[j].data_ptr<T>());
      weights.b.push_back(w.b[j].data_ptr<T>());
    }
  }

  void vjp(const at::Tensor& v, at::Tensor& dx, MlpGrads* grads) override {
    typename MlpKernel<T>::Grads into;
    if (grads) {
      into.mode = MlpKernel<T>::Grads::Mode::Write;
      grads->W.clear();
      grads->b.clear();
      for (int64_t j = 0; j < shape.layers(); ++j) {
        grads->W.push_back(pool.get({shape.sizes[j + 1], shape.fan_in(j)}, v.options()));
        grads->b.push_back(pool.get({shape.sizes[j + 1]}, v.options()));
        into.W.push_back(grads->W.back().data_ptr<T>());
        into.b.push_back(grads->b.back().data_ptr<T>());
      }
    }
    kernel.vjp(weights, 0, t, v.data_ptr<T>(), dx.data_ptr<T>(), into);
  }

  at::Tensor input(int64_t j) const override { return kernel.inputs(j)[0].view({batch, kernel.input_size(j) / batch}); }

  MlpKernel<T> kernel;
  typename MlpKernel<T>::Weights weights;
  int64_t batch;
};
}  // namespace

bool MlpRawPass::applies(const MlpShape& shape, const MlpWeights& w, const at::Tensor& x) {
  if (!x.is_cpu() || (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)) return false;
  if (x.dim() != 2 || x.size(1) != shape.sizes[0] || !x.is_contiguous()) return false;
  for (size_t j = 0; j < w.W.size(); ++j) {
    for (const at::Tensor* p : {&w.W[j], &w.b[j]}) {
      if (!p->is_cpu() || p->scalar_type() != x.scalar_type() || !p->is_contiguous()) return false;
    }
  }
  return true;
}

MlpRawPass::MlpRawPass(const MlpShape& shape, const MlpWeights& w, double t, const at::Tensor& x, BufferPool& pool) {
  out_ = pool.get({x.size(0), shape.sizes.back()}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "mlp_raw_forward", [&] {
    auto k = std::make_shared<RawKernel<scalar_t>>(shape, w, t, x.size(0), pool, x.options());
    k->kernel.forward(k->weights, 0, t, x.data_ptr<scalar_t>(), out_.data_ptr<scalar_t>());
    kernel_ = std::move(k);
  });
}

at::Tensor MlpRawPass::vjp(const at::Tensor& v, MlpGrads* grads) const {
  if (grads && grads->deltas_only) throw std::logic_error("MlpRawPass: no deltas_only gradients");
  const at::Tensor v_contiguous = v.contiguous();
  at::Tensor dx = kernel_->pool.get({v.size(0), kernel_->shape.sizes[0]}, v.options());
  kernel_->vjp(v_contiguous, dx, grads);
  return dx;
}

MlpCache MlpRawPass::cache(const at::Tensor& x) const {
  const MlpShape& shape = kernel_->shape;
  MlpCache cache;
  for (int64_t j = 0; j < shape.layers(); ++j) {
    const at::Tensor a = j == 0 ? x : kernel_->input(j).narrow(1, 0, shape.sizes[j]).clone();
    cache.push_back(shape.has_time(j) ? at::cat({a, at::full({a.size(0), 1}, kernel_->t, a.options())}, 1) : a);
  }
  return cache;
}

}  // namespace sde
