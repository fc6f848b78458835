#include "bnn/conv_dynamics.h"

#include "bnn/conv_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

#include "sde/errors.h"

namespace bnn {

// ---- Conv dynamics -------------------------------------------------------------------------

ConvDynamics::ConvDynamics(int64_t channels, int64_t height, int64_t width_px, int64_t hidden, Activation activation)
    : c_(channels), h_(height), w_(width_px), hidden_(hidden), activation_(activation) {
  w_dim_ = hidden * (channels + 1) * 9 + hidden + channels * (hidden + 1) * 9 + channels;
}

namespace {
struct ConvSlices {
  at::Tensor k1, b1, k2, b2;
};
ConvSlices conv_slices(const at::Tensor& w, int64_t c, int64_t hidden) {
  ConvSlices s;
  int64_t offset = 0;
  s.k1 = w.narrow(0, offset, hidden * (c + 1) * 9).view({hidden, c + 1, 3, 3});
  offset += hidden * (c + 1) * 9;
  s.b1 = w.narrow(0, offset, hidden);
  offset += hidden;
  s.k2 = w.narrow(0, offset, c * (hidden + 1) * 9).view({c, hidden + 1, 3, 3});
  offset += c * (hidden + 1) * 9;
  s.b2 = w.narrow(0, offset, c);
  return s;
}

// The zero-bordered layout: each image padded to (H+2) x (W+2), flattened per channel over the
// batch (Np columns). Output columns are computed on the window [s, s + L) that covers every
// interior pixel; tap (ky, kx) reads column j + (ky - 1)(W + 2) + (kx - 1).
struct Grid {
  int64_t batch, wp, np, s, len;
};
Grid grid(int64_t numel, int64_t c, int64_t h, int64_t w) {
  Grid g;
  g.wp = w + 2;
  g.batch = numel / (c * (h + 2) * g.wp);
  g.np = g.batch * (h + 2) * g.wp;
  g.s = g.wp + 1;
  g.len = g.np - 2 * g.s;
  return g;
}

// [rows, 3, 3, len] view of a [rows, np] matrix m: element (r, ky, kx, j) = m[r, s + j + tap offset].
at::Tensor taps(const at::Tensor& m, const Grid& g) {
  return m.as_strided({m.size(0), 3, 3, g.len}, {m.stride(0), g.wp, 1, 1}, m.storage_offset() + g.s - g.wp - 1);
}
// Column offset of tap (ky, kx) = (tap / 3, tap % 3).
int64_t tap_offset(int64_t tap, const Grid& g) { return (tap / 3 - 1) * g.wp + (tap % 3 - 1); }

at::Tensor with_time_channel(const at::Tensor& x, double t) {
  return at::cat({x, at::full({x.size(0), 1, x.size(2), x.size(3)}, t, x.options())}, 1);
}
}  // namespace

at::Tensor ConvDynamics::mask(int64_t batch, const at::TensorOptions& options) const {
  std::lock_guard<std::mutex> lock(mask_mutex_);
  if (!mask_.defined() || mask_batch_ != batch || mask_.scalar_type() != options.dtype().toScalarType() ||
      mask_.device() != options.device()) {
    at::Tensor m = at::zeros({batch, h_ + 2, w_ + 2}, options);
    m.narrow(1, 1, h_).narrow(2, 1, w_).fill_(1);
    mask_ = m.view({-1});
    mask_batch_ = batch;
  }
  return mask_;
}

at::Tensor ConvDynamics::to_state(const at::Tensor& h) const {
  return at::constant_pad_nd(h, {1, 1, 1, 1}).permute({1, 0, 2, 3}).reshape({-1});
}

at::Tensor ConvDynamics::from_state(const at::Tensor& flat, int64_t batch) const {
  return flat.view({c_, batch, h_ + 2, w_ + 2}).narrow(2, 1, h_).narrow(3, 1, w_).permute({1, 0, 2, 3});
}

at::Tensor ConvDynamics::reference(double t, const at::Tensor& h, const at::Tensor& w) const {
  const int64_t batch = h.numel() / (c_ * (h_ + 2) * (w_ + 2));
  const ConvSlices s = conv_slices(w, c_, hidden_);
  const at::Tensor x = from_state(h, batch);
  const at::Tensor a = sde::activate(activation_, at::conv2d(with_time_channel(x, t), s.k1, s.b1, 1, 1));
  return to_state(at::conv2d(with_time_channel(a, t), s.k2, s.b2, 1, 1));
}

namespace {
// ---- CPU: the hand-written shifted sums of conv_kernels.h, image by image ----
// One image at a time keeps its activations (hidden x (H+2)(W+2)) in L2 between the convolutions
// and the elementwise passes. Images are self-contained (their taps never leave their own zero
// borders), so they run in parallel and their weight gradients add up in a fixed order.

// Runs `body(image, workspace)` on every image, across the intra-op threads (the ATen ops inside
// then run single-threaded, in the calling worker's cache).
template <typename F>
void for_each_image(int64_t batch, const F& body) {
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    at::NoGradGuard no_grad;  // grad mode is thread-local: keep the workers' ops off the graph
    // per-thread scratch, kept between calls: allocating it per call cost page faults and, with
    // several threads, the munmap's TLB shootdowns
    thread_local sde::BufferPool ws(int64_t(64) << 20);
    for (int64_t i = begin; i < end; ++i) body(i, ws);
  });
}

// One image's grid.
Grid image_grid(const Grid& g) {
  Grid ig = g;
  ig.batch = 1;
  ig.np = g.np / g.batch;
  ig.len = ig.np - 2 * ig.s;
  return ig;
}

// Column offsets of the taps, and their negatives (the transposed convolutions of the VJP).
struct TapOffsets {
  int64_t fwd[9], back[9];
};
TapOffsets tap_offsets(const Grid& g) {
  TapOffsets o;
  for (int64_t tap = 0; tap < 9; ++tap) {
    o.fwd[tap] = tap_offset(tap, g);
    o.back[tap] = -o.fwd[tap];
  }
  return o;
}

// `count` row pointers, `stride` apart from base.
template <typename T>
std::vector<T*> rows(T* base, int64_t count, int64_t stride) {
  std::vector<T*> r(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) r[static_cast<size_t>(i)] = base + i * stride;
  return r;
}
// The same rows from column `by` on (T** passes for the kernels' const T* const* inputs too).
template <typename T>
std::vector<T*> shifted(const std::vector<T*>& r, int64_t by) {
  std::vector<T*> out(r.size());
  for (size_t i = 0; i < r.size(); ++i) out[i] = r[i] + by;
  return out;
}

// A [rows, len] view of row pointers `stride` apart, for the elementwise passes.
template <typename T>
at::Tensor view_of(T* p, int64_t count, int64_t len, int64_t stride, const at::TensorOptions& options) {
  return at::from_blob(p, {count, len}, {stride, 1}, options);
}

// Zero the columns of an image's row outside its window [s, s + len).
template <typename T>
void zero_borders(T* row, const Grid& g) {
  std::fill(row, row + g.s, T(0));
  std::fill(row + g.s + g.len, row + g.np, T(0));
}

struct ConvShape {
  int64_t c, hidden;
  Activation activation;
  int64_t height, width;
};

// The time channel t * mask depends on the position in the image only: its contribution to a
// convolution is the same map for every image, computed once per call (with the bias) and used to
// initialise each image's sums. conv 1 then reads only h's channels.
template <typename T>
at::Tensor time_and_bias(const at::Tensor& kernel, const at::Tensor& bias, double t, const T* mask, const Grid& ig,
                         const int64_t* off) {
  const int64_t out = kernel.size(0), in = kernel.size(1);
  const at::Tensor kt = (kernel.select(1, in - 1) * t).contiguous();  // [out, 3, 3]
  at::Tensor map = at::empty({out, ig.np}, kernel.options());
  const std::vector<T*> mr = rows(map.data_ptr<T>(), out, ig.np);
  const std::vector<const T*> x = {mask + ig.s};
  conv::shifted_sum(out, 1, kt.data_ptr<T>(), x.data(), off, nullptr, shifted(mr, ig.s).data(), ig.len);
  for (int64_t o = 0; o < out; ++o) {
    T* row = mr[static_cast<size_t>(o)] + ig.s;
    const T b = bias.data_ptr<T>()[o];
    for (int64_t j = 0; j < ig.len; ++j) row[j] += b;
  }
  return map;
}

// The gradient of a time-channel kernel, sum_j d[m][j] t mask[j + off(tap)], without a pass per
// tap: d (the masked cotangent of one image's conv output) is zero outside the image, and there
// mask[j + off] is 1 except where the tap reaches over the image's edge: the first or last row
// (ky = 0 or 2) and column (kx = 0 or 2). So it is t (the sum of d - its sums along those edges).
// `total` holds the sums of d; G[m * g_row + tap] gets the result.
template <typename T>
void time_kernel_grad(const std::vector<T*>& d, const Grid& ig, int64_t height, int64_t width, double t, const T* total,
                      T* G, int64_t g_row) {
  const int64_t wp = ig.wp, first = wp + 1, last_row = height * wp + 1;  // columns of (row 1, col 1), (row H, col 1)
  for (size_t m = 0; m < d.size(); ++m) {
    const T* r = d[m];
    double top = 0, bottom = 0, left = 0, right = 0;
    for (int64_t x = 0; x < width; ++x) top += r[first + x], bottom += r[last_row + x];
    for (int64_t y = 0; y < height; ++y) left += r[first + y * wp], right += r[first + y * wp + width - 1];
    const double corner[3][3] = {
        {r[first], 0, r[first + width - 1]}, {0, 0, 0}, {r[last_row], 0, r[last_row + width - 1]}};
    for (int tap = 0; tap < 9; ++tap) {
      const int ky = tap / 3, kx = tap % 3;
      const double outside = (ky == 0   ? top
                              : ky == 2 ? bottom
                                        : 0) +
                             (kx == 0   ? left
                              : kx == 2 ? right
                                        : 0) -
                             corner[ky][kx];
      G[static_cast<int64_t>(m) * g_row + tap] = static_cast<T>(t * (static_cast<double>(total[m]) - outside));
    }
  }
}

// The forward pass, image by image: what a call prepares (the time-and-bias maps, h's kernels),
// then X2 = act(z1) into the rows x2r (kept for the VJP, or scratch) and f into out.
template <typename T>
struct ForwardPass {
  ConvShape sh;
  Grid g, ig;
  TapOffsets off;
  const T* mask;  // one image's: every image's mask is the same
  at::Tensor init1, init2, k1h, k2h;
  std::vector<T*> init1r, init2r;
  at::TensorOptions options;

  ForwardPass(const ConvShape& shape, double t, const at::Tensor& w, const at::Tensor& mask_all, const Grid& grid)
      : sh(shape),
        g(grid),
        ig(image_grid(grid)),
        off(tap_offsets(grid)),
        mask(mask_all.data_ptr<T>()),
        options(w.options()) {
    const ConvSlices k = conv_slices(w, sh.c, sh.hidden);
    init1 = time_and_bias<T>(k.k1, k.b1, t, mask, ig, off.fwd);
    init2 = time_and_bias<T>(k.k2, k.b2, t, mask, ig, off.fwd);
    k1h = k.k1.narrow(1, 0, sh.c).contiguous();
    k2h = k.k2.narrow(1, 0, sh.hidden).contiguous();
    init1r = shifted(rows(init1.data_ptr<T>(), sh.hidden, ig.np), ig.s);
    init2r = shifted(rows(init2.data_ptr<T>(), sh.c, ig.np), ig.s);
  }

  void image(int64_t i, const T* h, const std::vector<T*>& x2r, T* out, sde::BufferPool& ws) const {
    const int64_t c = sh.c, hidden = sh.hidden, c0 = i * ig.np;
    // conv 1 on the window, from h's channels
    const std::vector<T*> x1r = rows(const_cast<T*>(h) + c0, c, g.np);
    const at::Tensor z1 = ws.get({hidden, ig.len}, options);
    const std::vector<T*> z1r = rows(z1.data_ptr<T>(), hidden, ig.len);
    conv::shifted_sum(hidden, c, k1h.data_ptr<T>(), shifted(x1r, ig.s).data(), off.fwd, init1r.data(), z1r.data(),
                      ig.len);
    // X2 = act(z1) inside the image, zero on its borders
    for (T* row : x2r) zero_borders(row, ig);
    if (sh.activation == Activation::Softplus) {  // the default: one pass per row
      conv::softplus_masked(hidden, z1r.data(), mask + ig.s, shifted(x2r, ig.s).data(), ig.len);
    } else {
      const int64_t x2_stride = hidden > 1 ? x2r[1] - x2r[0] : ig.np;
      at::Tensor a1 = view_of(x2r[0] + ig.s, hidden, ig.len, x2_stride, options);
      sde::activate_into(sh.activation, a1, z1);
      a1.mul_(at::from_blob(const_cast<T*>(mask) + ig.s, {ig.len}, options));
    }
    // conv 2 on the window, from X2; masked
    const std::vector<T*> outr = rows(out + c0, c, g.np);
    conv::shifted_sum(c, hidden, k2h.data_ptr<T>(), shifted(x2r, ig.s).data(), off.fwd, init2r.data(),
                      shifted(outr, ig.s).data(), ig.len);
    for (T* row : outr) {
      for (int64_t j = ig.s; j < ig.s + ig.len; ++j) row[j] *= mask[j];
      zero_borders(row, ig);
    }
  }
};

// The VJP, image by image, at the point whose X2 rows are given: d h into dh, and each image's
// weight gradients into its own row of `part`; reduce() adds the rows in image order, so the
// result does not depend on the thread count.
template <typename T>
struct VjpPass {
  ConvShape sh;
  double t;
  Grid g, ig;
  TapOffsets off;
  const T* mask;
  at::Tensor k1t, k2t, part;
  int64_t w_dim, n_k1, n_k2;
  at::TensorOptions options;

  VjpPass(const ConvShape& shape, double time, const at::Tensor& w, const at::Tensor& mask_all, const Grid& grid)
      : sh(shape),
        t(time),
        g(grid),
        ig(image_grid(grid)),
        off(tap_offsets(grid)),
        mask(mask_all.data_ptr<T>()),
        w_dim(w.numel()),
        n_k1(sh.hidden * (sh.c + 1) * 9),
        n_k2(sh.c * (sh.hidden + 1) * 9),
        options(w.options()) {
    const ConvSlices k = conv_slices(w, sh.c, sh.hidden);
    k1t = k.k1.narrow(1, 0, sh.c).transpose(0, 1).contiguous();  // [C, hidden, 3, 3]
    k2t = k.k2.transpose(0, 1).contiguous();                     // [hidden + 1, C, 3, 3]
    part = at::empty({g.batch, w_dim}, options);
  }

  void image(int64_t i, const T* h, const std::vector<T*>& x2r, const T* v, T* dh, sde::BufferPool& ws) const {
    const int64_t c = sh.c, hidden = sh.hidden, c0 = i * ig.np;
    T* dk1 = part.data_ptr<T>() + i * w_dim;
    T *db1 = dk1 + n_k1, *dk2 = db1 + hidden, *db2 = dk2 + n_k2;
    const std::vector<T*> x1r = rows(const_cast<T*>(h) + c0, c, g.np);
    const at::Tensor kgrad_buffer = ws.get({c * hidden * 9}, options);
    T* kgrad = kgrad_buffer.data_ptr<T>();
    // vm = the masked cotangent, zero on the borders
    const at::Tensor vm = ws.get({c, ig.np}, options);
    const std::vector<T*> vmr = rows(vm.data_ptr<T>(), c, ig.np);
    for (int64_t co = 0; co < c; ++co) {
      const T* vrow = v + co * g.np + c0;
      T* row = vmr[static_cast<size_t>(co)];
      for (int64_t j = 0; j < ig.np; ++j) row[j] = vrow[j] * mask[j];
      db2[co] = conv::sum(row, ig.np);
    }
    // dK2: the hidden channels by shifted dots (as sum_j x2[ci][j] vm[co][j - off]: the many rows
    // unshifted), the time channel from the sums of vm
    conv::shifted_dot(hidden, c, shifted(x2r, ig.s).data(), shifted(vmr, ig.s).data(), off.back, kgrad, ig.len);
    for (int64_t co = 0; co < c; ++co) {
      for (int64_t ci = 0; ci < hidden; ++ci)
        std::copy_n(kgrad + (ci * c + co) * 9, 9, dk2 + (co * (hidden + 1) + ci) * 9);
    }
    time_kernel_grad(vmr, ig, sh.height, sh.width, t, db2, dk2 + hidden * 9, (hidden + 1) * 9);
    // d a1 = conv 2 transposed; dz1 = d a1 * act'(z1) * mask, inside zero margins for conv 1's transpose
    const at::Tensor da = ws.get({hidden, ig.len}, options);
    const std::vector<T*> dar = rows(da.data_ptr<T>(), hidden, ig.len);
    conv::shifted_sum(hidden, c, k2t.data_ptr<T>(), shifted(vmr, ig.s).data(), off.back, nullptr, dar.data(), ig.len);
    const at::Tensor dz1 = ws.get({hidden, ig.np}, options);
    const std::vector<T*> dz1r = rows(dz1.data_ptr<T>(), hidden, ig.np);
    conv::slope_product(sh.activation, hidden, shifted(x2r, ig.s).data(), dar.data(), mask + ig.s,
                        shifted(dz1r, ig.s).data(), db1, ig.len);
    for (T* row : dz1r) zero_borders(row, ig);
    // dK1 likewise: h's channels by shifted dots, the time channel from the sums of dz1
    conv::shifted_dot(hidden, c, shifted(dz1r, ig.s).data(), shifted(x1r, ig.s).data(), off.fwd, kgrad, ig.len);
    for (int64_t m = 0; m < hidden; ++m) std::copy(kgrad + m * c * 9, kgrad + (m + 1) * c * 9, dk1 + m * (c + 1) * 9);
    time_kernel_grad(dz1r, ig, sh.height, sh.width, t, db1, dk1 + c * 9, (c + 1) * 9);
    // d h = conv 1 transposed, on the window (h's borders are padding: zero)
    const std::vector<T*> dhr = rows(dh + c0, c, g.np);
    conv::shifted_sum(c, hidden, k1t.data_ptr<T>(), shifted(dz1r, ig.s).data(), off.back, nullptr,
                      shifted(dhr, ig.s).data(), ig.len);
    for (T* row : dhr) zero_borders(row, ig);
  }

  void reduce(at::Tensor& dw) const {
    T* out = dw.data_ptr<T>();
    const T* p = part.data_ptr<T>();
    std::copy_n(p, w_dim, out);
    for (int64_t i = 1; i < g.batch; ++i) {
      for (int64_t j = 0; j < w_dim; ++j) out[j] += p[i * w_dim + j];
    }
  }
};

template <typename T>
void forward_cpu(const ConvShape& sh, double t, const at::Tensor& h, const at::Tensor& w, const at::Tensor& mask_all,
                 const Grid& g, const at::Tensor& x2, at::Tensor& out) {
  const ForwardPass<T> pass(sh, t, w, mask_all, g);
  const int64_t np = image_grid(g).np;
  const at::TensorOptions options = h.options();
  for_each_image(g.batch, [&](int64_t i, sde::BufferPool& ws) {
    const at::Tensor scratch = x2.defined() ? at::Tensor() : ws.get({sh.hidden, np}, options);
    const std::vector<T*> x2r =
        x2.defined() ? rows(x2.data_ptr<T>() + i * np, sh.hidden, g.np) : rows(scratch.data_ptr<T>(), sh.hidden, np);
    pass.image(i, h.data_ptr<T>(), x2r, out.data_ptr<T>(), ws);
  });
}

template <typename T>
void vjp_cpu(const ConvShape& sh, double t, const at::Tensor& w, const at::Tensor& h, const at::Tensor& x2,
             const at::Tensor& mask_all, const at::Tensor& v, const Grid& g, at::Tensor& dh, at::Tensor& dw) {
  const VjpPass<T> pass(sh, t, w, mask_all, g);
  const int64_t np = image_grid(g).np;
  for_each_image(g.batch, [&](int64_t i, sde::BufferPool& ws) {
    const std::vector<T*> x2r = rows(const_cast<T*>(x2.data_ptr<T>()) + i * np, sh.hidden, g.np);
    pass.image(i, h.data_ptr<T>(), x2r, v.data_ptr<T>(), dh.data_ptr<T>(), ws);
  });
  pass.reduce(dw);
}

// Both at one point, image by image: X2 never leaves the thread's scratch (the adjoint's pattern).
template <typename T>
void forward_vjp_cpu(const ConvShape& sh, double t, const at::Tensor& h, const at::Tensor& w,
                     const at::Tensor& mask_all, const at::Tensor& v, const Grid& g, at::Tensor& out, at::Tensor& dh,
                     at::Tensor& dw) {
  const ForwardPass<T> forward(sh, t, w, mask_all, g);
  const VjpPass<T> backward(sh, t, w, mask_all, g);
  const int64_t np = image_grid(g).np;
  const at::TensorOptions options = h.options();
  for_each_image(g.batch, [&](int64_t i, sde::BufferPool& ws) {
    const at::Tensor x2 = ws.get({sh.hidden, np}, options);
    const std::vector<T*> x2r = rows(x2.data_ptr<T>(), sh.hidden, np);
    forward.image(i, h.data_ptr<T>(), x2r, out.data_ptr<T>(), ws);
    backward.image(i, h.data_ptr<T>(), x2r, v.data_ptr<T>(), dh.data_ptr<T>(), ws);
  });
  backward.reduce(dw);
}
}  // namespace

// ---- Other devices: ATen ops over the whole batch ----
// conv 1 is one GEMM over the 9 shifted copies of the input (im2col), conv 2 one GEMM followed by
// 9 shifted sums; the VJP likewise. On accelerators a few large kernels win. Under bf16 autocast
// (lib/gpu.ts) the GEMMs run in bf16 and their results return to the state's dtype, which the
// out= and in-place ops that follow write.
namespace {
// conv 1's input matrix X1 [(C+1)*9, len]: the 9 shifted copies of each channel of h ([C, np]) and
// of t * mask.
at::Tensor im2col(const at::Tensor& h, const at::Tensor& mask, double t, int64_t c, const Grid& g) {
  at::Tensor x1 = at::empty({c + 1, 3, 3, g.len}, h.options());
  x1.narrow(0, 0, c).copy_(taps(h, g));
  x1.select(0, c).copy_(taps(mask.unsqueeze(0), g).select(0, 0)).mul_(t);
  return x1.view({(c + 1) * 9, g.len});
}

at::Tensor forward_aten(const ConvShape& sh, double t, const at::Tensor& h, const at::Tensor& w, const at::Tensor& mask,
                        const Grid& g, at::Tensor& x2) {
  const int64_t c = sh.c, hidden = sh.hidden;
  const ConvSlices k = conv_slices(w, c, hidden);
  const at::Tensor in = h.view({c, g.np});
  const at::Tensor mask_w = mask.narrow(0, g.s, g.len);
  const at::Tensor k1m = k.k1.reshape({hidden, (c + 1) * 9});
  const at::Tensor k2r = k.k2.permute({0, 2, 3, 1}).reshape({c * 9, hidden + 1});
  // X2 [hidden + 1, np]: act(z1), zero on the borders, then the t row t * mask
  x2.select(0, hidden).copy_(mask).mul_(t);
  const at::Tensor z1 = at::addmm(k.b1.unsqueeze(1), k1m, im2col(in, mask, t, c, g)).to(h.scalar_type());
  x2.narrow(0, 0, hidden).narrow(1, 0, g.s).zero_();
  x2.narrow(0, 0, hidden).narrow(1, g.s + g.len, g.s).zero_();
  at::Tensor a1 = x2.narrow(0, 0, hidden).narrow(1, g.s, g.len);
  sde::activate_into(sh.activation, a1, z1);
  a1.mul_(mask_w);
  // conv 2: Q [C*9, np] = K2 (rows co*9 + tap) X2, then out[co, j] = sum over taps of Q[co*9 + tap, j + offset]
  const at::Tensor qv = at::mm(k2r, x2).to(h.scalar_type()).view({c, 9, g.np});
  at::Tensor out = at::zeros({c, g.np}, h.options());
  at::Tensor window = out.narrow(1, g.s, g.len);
  for (int64_t tap = 0; tap < 9; ++tap) window.add_(qv.select(1, tap).narrow(1, g.s + tap_offset(tap, g), g.len));
  window.add_(k.b2.unsqueeze(1)).mul_(mask_w);
  return out;
}

std::pair<at::Tensor, at::Tensor> vjp_aten(const ConvShape& sh, double t, const at::Tensor& w, const at::Tensor& h,
                                           const at::Tensor& x2, const at::Tensor& mask, const at::Tensor& v,
                                           const Grid& g) {
  const int64_t c = sh.c, hidden = sh.hidden;
  const ConvSlices k = conv_slices(w, c, hidden);
  const at::Tensor in = h.view({c, g.np});
  const at::Tensor mask_w = mask.narrow(0, g.s, g.len);
  const at::Tensor k1t = k.k1.reshape({hidden, (c + 1) * 9}).narrow(1, 0, c * 9).t();  // [C*9, hidden]
  const at::Tensor k2t = k.k2.permute({0, 2, 3, 1}).reshape({c * 9, hidden + 1}).narrow(1, 0, hidden).t();
  // vm = the masked cotangent on the window, inside zero margins of wp + 1 columns
  const int64_t m = g.wp + 1;
  at::Tensor vpad = at::zeros({c, g.len + 2 * m}, v.options());
  at::Tensor vm = vpad.narrow(1, m, g.len);
  at::mul_out(vm, v.view({c, g.np}).narrow(1, g.s, g.len), mask_w);
  const at::Tensor db2 = vm.sum(1);
  // V2 [C*9, len] on the window: row co*9 + tap is vm[co] shifted back by the tap's offset
  at::Tensor v2t = at::empty({c, 9, g.len}, v.options());
  for (int64_t tap = 0; tap < 9; ++tap) v2t.select(1, tap).copy_(vpad.narrow(1, m - tap_offset(tap, g), g.len));
  const at::Tensor v2 = v2t.view({c * 9, g.len});
  // X2 is zero outside the window, so the window holds every term of dK2
  const at::Tensor x2w = x2.narrow(1, g.s, g.len);
  const at::Tensor dk2r = at::mm(v2, x2w.t()).to(v.scalar_type());
  const at::Tensor dz1 =
      sde::activation_backward(sh.activation, at::mm(k2t, v2).to(v.scalar_type()), x2w.narrow(0, 0, hidden))
          .mul_(mask_w);
  const at::Tensor db1 = dz1.sum(1);
  const at::Tensor dk1 = at::mm(dz1, im2col(in, mask, t, c, g).t()).to(v.scalar_type());
  // col2im: each tap's rows land shifted back on the input columns (overlapping: one add per tap)
  const at::Tensor dx1 = at::mm(k1t, dz1).to(v.scalar_type()).view({c, 9, g.len});
  at::Tensor dh = at::zeros({c, g.np}, v.options());
  for (int64_t tap = 0; tap < 9; ++tap) dh.narrow(1, g.s + tap_offset(tap, g), g.len).add_(dx1.select(1, tap));
  dh.mul_(mask);  // h's borders are padding
  const at::Tensor dk2 = dk2r.view({c, 3, 3, hidden + 1}).permute({0, 3, 1, 2});
  return {dh.view({-1}), at::cat({dk1.reshape({-1}), db1, dk2.reshape({-1}), db2})};
}
}  // namespace

at::Tensor ConvDynamics::forward(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache) const {
  at::Tensor out = at::empty({h.numel()}, h.options());
  forward_into(t, h, w, cache, out);
  return out;
}

void ConvDynamics::forward_into(double t, const at::Tensor& h, const at::Tensor& w, Cache* cache,
                                at::Tensor& out) const {
  const ConvShape sh{c_, hidden_, activation_, h_, w_};
  const Grid g = grid(h.numel(), c_, h_, w_);
  const at::Tensor mask_all = mask(g.batch, h.options());
  const at::Tensor hc = h.contiguous(), wc = w.contiguous();
  // X2 is kept for the VJP (act'(z1) comes from act(z1), X1 is rebuilt from h): backprop's only new memory
  at::Tensor x2;
  if (!h.is_cpu()) {
    x2 = pool_.get({hidden_ + 1, g.np}, h.options());
    out.copy_(forward_aten(sh, t, hc, wc, mask_all, g, x2).view({-1}));
  } else {
    if (cache) x2 = pool_.get({hidden_, g.np}, h.options());
    at::Tensor out2d = out.view({c_, g.np});
    AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "conv_forward",
                               [&] { forward_cpu<scalar_t>(sh, t, hc, wc, mask_all, g, x2, out2d); });
  }
  if (cache) {
    cache->push_back(hc);
    cache->push_back(x2);
    cache->push_back(mask_all);
  }
}

void ConvDynamics::forward_vjp_into(double t, const at::Tensor& h, const at::Tensor& w, const at::Tensor& v,
                                    at::Tensor& out, at::Tensor& dh, at::Tensor& dw) const {
  if (!h.is_cpu()) {
    Cache cache;
    forward_into(t, h, w, &cache, out);
    vjp_into(t, w, cache, v, dh, dw);
    return;
  }
  const ConvShape sh{c_, hidden_, activation_, h_, w_};
  const Grid g = grid(h.numel(), c_, h_, w_);
  const at::Tensor mask_all = mask(g.batch, h.options());
  const at::Tensor hc = h.contiguous(), wc = w.contiguous(), vc = v.contiguous();
  at::Tensor out2d = out.view({c_, g.np}), dh2d = dh.view({c_, g.np});
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "conv_forward_vjp",
                             [&] { forward_vjp_cpu<scalar_t>(sh, t, hc, wc, mask_all, vc, g, out2d, dh2d, dw); });
}

std::pair<at::Tensor, at::Tensor> ConvDynamics::vjp(double t, const at::Tensor& w, const Cache& cache,
                                                    const at::Tensor& v) const {
  at::Tensor dh = at::empty({v.numel()}, v.options()), dw = at::empty({w_dim_}, v.options());
  vjp_into(t, w, cache, v, dh, dw);
  return {dh, dw};
}

void ConvDynamics::vjp_into(double t, const at::Tensor& w, const Cache& cache, const at::Tensor& v, at::Tensor& dh,
                            at::Tensor& dw) const {
  const ConvShape sh{c_, hidden_, activation_, h_, w_};
  const at::Tensor &h = cache[0], &x2 = cache[1], &mask_all = cache[2];
  const Grid g = grid(v.numel(), c_, h_, w_);
  const at::Tensor wc = w.contiguous(), vc = v.contiguous();
  if (!v.is_cpu()) {
    auto [dh_a, dw_a] = vjp_aten(sh, t, wc, h, x2, mask_all, vc, g);
    dh.copy_(dh_a);
    dw.copy_(dw_a);
    return;
  }
  at::Tensor dh2d = dh.view({c_, g.np});
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "conv_vjp",
                             [&] { vjp_cpu<scalar_t>(sh, t, wc, h, x2, mask_all, vc, g, dh2d, dw); });
}

at::Tensor ConvDynamics::init_w0(W0Init init, double std, at::Generator& gen, const at::TensorOptions& options) const {
  const auto cpu = options.device(c10::kCPU);
  if (init == W0Init::Normal) return at::randn({w_dim_}, gen, cpu) * std;
  const int64_t fan1 = (c_ + 1) * 9, fan2 = (hidden_ + 1) * 9;
  return at::cat({sde::fan_in_uniform(hidden_ * fan1, fan1, gen, cpu), sde::fan_in_uniform(hidden_, fan1, gen, cpu),
                  sde::fan_in_uniform(c_ * fan2, fan2, gen, cpu), sde::fan_in_uniform(c_, fan2, gen, cpu)});
}

namespace {

template <typename T>
at::Tensor wrap(const T* p, int64_t n) {
  return at::from_blob(const_cast<T*>(p), {n}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

// The raw form for the buffered solver: forward_into / vjp_into on views of its buffers, a copy of
// each stored h per slot (the cache refers to it).
template <typename T>
class ConvDynamicsKernel : public DynamicsKernel<T> {
 public:
  ConvDynamicsKernel(const ConvDynamics& d, int64_t nh, int64_t slots, sde::BufferPool& pool)
      : dyn_(d), nh_(nh), w_dim_(d.w_dim()), caches_(static_cast<size_t>(slots)) {
    H_ = pool.get({slots, nh}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
  }

  void forward(int64_t slot, double t, const T* h, const T* w, T* fh, bool store) override {
    at::Tensor out = wrap(fh, nh_);
    if (!store) return dyn_.forward_into(t, wrap(h, nh_), wrap(w, w_dim_), nullptr, out);
    const at::Tensor hs = H_[slot];
    std::copy_n(h, nh_, hs.data_ptr<T>());
    Cache c;
    dyn_.forward_into(t, hs, wrap(w, w_dim_), &c, out);
    caches_[static_cast<size_t>(slot)] = std::move(c);
  }

  void vjp(int64_t slot, double t, const T* w, const T* v, T* dh, T* dw) override {
    at::Tensor dh_t = wrap(dh, nh_), dw_t = wrap(dw, w_dim_);
    dyn_.vjp_into(t, wrap(w, w_dim_), caches_[static_cast<size_t>(slot)], wrap(v, nh_), dh_t, dw_t);
  }

  void forward_vjp(double t, const T* h, const T* w, const T* v, T* fh, T* dh, T* dw) override {
    at::Tensor out = wrap(fh, nh_), dh_t = wrap(dh, nh_), dw_t = wrap(dw, w_dim_);
    dyn_.forward_vjp_into(t, wrap(h, nh_), wrap(w, w_dim_), wrap(v, nh_), out, dh_t, dw_t);
  }

 private:
  const ConvDynamics& dyn_;
  int64_t nh_, w_dim_;
  at::Tensor H_;
  std::vector<Cache> caches_;
};

}  // namespace

std::unique_ptr<DynamicsKernel<float>> ConvDynamics::kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                            float) const {
  return std::make_unique<ConvDynamicsKernel<float>>(*this, state_numel(batch), slots, pool);
}
std::unique_ptr<DynamicsKernel<double>> ConvDynamics::kernel(int64_t batch, int64_t slots, sde::BufferPool& pool,
                                                             double) const {
  return std::make_unique<ConvDynamicsKernel<double>>(*this, state_numel(batch), slots, pool);
}

}  // namespace bnn
