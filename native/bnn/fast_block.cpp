#include "bnn/fast_block.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "sde/activations.h"
#include "sde/dense.h"
#include "sde/errors.h"

namespace bnn {

namespace {

using sde::dense::dot;

template <typename T>
at::Tensor wrap(const T* p, int64_t n) {
  return at::from_blob(const_cast<T*>(p), {n}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

template <typename T>
T* ptr(const at::Tensor& t) {
  return t.data_ptr<T>();
}

template <typename T>
bool all_finite(const T* x, int64_t n) {
  T acc = 0;  // x - x is 0 for finite x and NaN otherwise
  for (int64_t i = 0; i < n; ++i) acc += x[i] - x[i];
  return acc == 0;
}

// ---- the hypernetwork g([w, t]) ----------------------------------------------------------------

// Per slot (one slot per stored step): layer inputs A_j (A_0 = [w, t]), pre-activations Z_j and
// slopes S_j of the hidden layers, and the output g. Both products run along W_j's contiguous rows:
// W_j x as one dot per row (gemv_rows; gemv_short for short rows), W_j^T x as a sum of rows
// (gemv_axpy). (A transposed copy of the 1283 x 64 layer, made for every solve, cost ~5% of W1.)
template <typename T>
struct HyperKernel {
  std::vector<int64_t> sizes;
  Activation act = Activation::Identity;
  int64_t n = 0, wd = 0, slots = 0;
  std::vector<const T*> W, b;
  std::vector<at::Tensor> A, Z, S;
  at::Tensor G, scratch;

  void init(const Hypernet& h, const std::vector<at::Tensor>& params, int64_t n_slots, FastWorkspace& ws) {
    sizes = h.sizes();
    act = h.activation();
    n = h.layers();
    wd = h.w_dim();
    slots = n_slots;
    const at::TensorOptions o = params.front().options();
    for (int64_t j = 0; j < n; ++j) {
      W.push_back(ptr<T>(params[2 * j]));
      b.push_back(ptr<T>(params[2 * j + 1]));
      A.push_back(ws.get({slots, sizes[j]}, o));
      if (j + 1 < n) {
        Z.push_back(ws.get({slots, sizes[j + 1]}, o));
        S.push_back(ws.get({slots, sizes[j + 1]}, o));
      }
    }
    G = ws.get({slots, wd}, o);
    int64_t widest = 0;
    for (int64_t s : sizes) widest = std::max(widest, s);
    scratch = ws.get({4, widest}, o);
  }

  const T* w_of(int64_t slot) const { return ptr<T>(A[0]) + slot * sizes[0]; }
  const T* g_of(int64_t slot) const { return ptr<T>(G) + slot * wd; }

  // y [out] = b + W_j x
  void layer(int64_t j, const T* x, T* y) const {
    sde::dense::gemv(sizes[j + 1], sizes[j], W[j], x, b[j], y);
  }
  // y [in] = W_j^T x
  void layer_t(int64_t j, const T* x, T* y) const {
    sde::dense::gemv_t(sizes[j + 1], sizes[j], W[j], x, nullptr, y);
  }

  const T* forward(int64_t slot, const T* w, double t) {
    T* a0 = ptr<T>(A[0]) + slot * sizes[0];
    std::memcpy(a0, w, sizeof(T) * wd);
    a0[wd] = static_cast<T>(t);
    const T* a = a0;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t out = sizes[j + 1];
      T* z = j + 1 < n ? ptr<T>(Z[j]) + slot * out : ptr<T>(G) + slot * wd;
      layer(j, a, z);
      if (j + 1 < n) {
        T* next = ptr<T>(A[j + 1]) + slot * out;
        sde::activate_cpu(act, out, z, next, ptr<T>(S[j]) + slot * out);
        a = next;
      }
    }
    return g_of(slot);
  }

  // VJP at `slot`: vp flows to the parameters and to w, vx (optional) to w only. dw (wd) is
  // overwritten; row j of the parameters' cotangent goes to rows[j] (out_j entries).
  void vjp(int64_t slot, const T* vp, const T* vx, T* dw, const std::vector<T*>& rows) {
    const int64_t widest = scratch.size(1);
    T* cp = ptr<T>(scratch);
    T* np = cp + widest;
    T* cx = np + widest;
    T* nx = cx + widest;
    std::memcpy(cp, vp, sizeof(T) * wd);
    if (vx) {
      for (int64_t i = 0; i < wd; ++i) cx[i] = vp[i] + vx[i];
    }
    for (int64_t j = n - 1; j >= 0; --j) {
      const int64_t in = sizes[j], out = sizes[j + 1];
      std::memcpy(rows[static_cast<size_t>(j)], cp, sizeof(T) * out);
      if (j == 0) {  // only the w columns of W_0 matter
        layer_t(0, vx ? cx : cp, np);
        std::memcpy(dw, np, sizeof(T) * wd);
        break;
      }
      const T* s = ptr<T>(S[j - 1]) + slot * in;
      layer_t(j, cp, np);
      for (int64_t i = 0; i < in; ++i) np[i] *= s[i];
      std::swap(cp, np);
      if (vx) {
        layer_t(j, cx, nx);
        for (int64_t i = 0; i < in; ++i) nx[i] *= s[i];
        std::swap(cx, nx);
      }
    }
  }
};

// ---- the dynamics f_h(t, h; w) -------------------------------------------------------------------

template <typename T>
struct DynKernel {
  virtual ~DynKernel() = default;
  // fh (nh) = f(t, h; w); with `store`, keeps what vjp(slot) needs (the activations' slopes too).
  virtual void forward(int64_t slot, double t, const T* h, const T* w, T* fh, bool store) = 0;
  // (dh, dw) for the cotangent v at the stored point; both overwritten (dw: all of w_dim).
  virtual void vjp(int64_t slot, double t, const T* w, const T* v, T* dh, T* dw) = 0;
  // Both at one point, for a cotangent known beforehand (the adjoint's step).
  virtual void forward_vjp(int64_t slot, double t, const T* h, const T* w, const T* v, T* fh, T* dh, T* dw) {
    forward(slot, t, h, w, fh, true);
    vjp(slot, t, w, v, dh, dw);
  }
};

// The MLP on [batch, d] with layer weights [out, in (+1 for t)] and biases sliced from w.
template <typename T>
struct MlpKernel : DynKernel<T> {
  int64_t batch = 0, n = 0, wdim = 0, widest = 0, widest_mat = 0;
  std::vector<int64_t> sizes, in_eff, offset;
  Activation act = Activation::Identity;
  bool time_input = false;
  std::vector<at::Tensor> A, Z, S;  // per slot: layer inputs [B * in], hidden pre-activations and slopes
  at::Tensor scratch;               // W^T / dW^T, the t column, two deltas

  MlpKernel(const MlpDynamics& dyn, int64_t batch_size, int64_t slots, const at::TensorOptions& o, FastWorkspace& ws) {
    batch = batch_size;
    sizes = dyn.sizes();
    act = dyn.activation();
    time_input = dyn.time_input();
    n = static_cast<int64_t>(sizes.size()) - 1;
    wdim = dyn.w_dim();
    int64_t off = 0;
    for (int64_t l = 0; l < n; ++l) {
      const int64_t in = sizes[l], out = sizes[l + 1], ie = in + (time_input ? 1 : 0);
      in_eff.push_back(ie);
      offset.push_back(off);
      off += out * ie + out;
      A.push_back(ws.get({slots, batch * in}, o));
      if (l + 1 < n) {
        Z.push_back(ws.get({slots, batch * out}, o));
        S.push_back(ws.get({slots, batch * out}, o));
      }
      widest = std::max({widest, in, out});
      widest_mat = std::max(widest_mat, in * out);
    }
    scratch = ws.get({widest_mat + widest + 2 * batch * widest}, o);
  }

  void forward(int64_t slot, double t, const T* h, const T* w, T* fh, bool store) override {
    T* wt = ptr<T>(scratch);
    T* tcol = wt + widest_mat;
    T* a0 = ptr<T>(A[0]) + slot * batch * sizes[0];
    std::memcpy(a0, h, sizeof(T) * batch * sizes[0]);
    const T* a = a0;
    for (int64_t l = 0; l < n; ++l) {
      const int64_t in = sizes[l], out = sizes[l + 1], ie = in_eff[l];
      const T* Wl = w + offset[l];
      const T* bl = Wl + out * ie;
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) wt[i * out + o] = Wl[o * ie + i];
        if (time_input) tcol[o] = Wl[o * ie + in];
      }
      T* z = l + 1 < n ? ptr<T>(Z[l]) + slot * batch * out : fh;
      sde::dense::mm_bias(batch, in, out, a, wt, bl, time_input ? tcol : nullptr, static_cast<T>(t), z);
      if (l + 1 < n) {
        T* next = ptr<T>(A[l + 1]) + slot * batch * out;
        sde::activate_cpu(act, batch * out, z, next, store ? ptr<T>(S[l]) + slot * batch * out : nullptr);
        a = next;
      }
    }
  }


  void vjp(int64_t slot, double t, const T* w, const T* v, T* dh, T* dw) override {
    T* dwt = ptr<T>(scratch);
    T* cur = dwt + widest_mat + widest;
    T* nxt = cur + batch * widest;
    std::memcpy(cur, v, sizeof(T) * batch * sizes[n]);
    const T tt = static_cast<T>(t);
    for (int64_t l = n - 1; l >= 0; --l) {
      const int64_t in = sizes[l], out = sizes[l + 1], ie = in_eff[l];
      const T* Wl = w + offset[l];
      T* dW = dw + offset[l];
      T* db = dW + out * ie;
      const T* a = ptr<T>(A[l]) + slot * batch * in;
      for (int64_t o = 0; o < out; ++o) db[o] = 0;
      for (int64_t r = 0; r < batch; ++r) sde::dense::axpy(out, T(1), cur + r * out, db);
      if (out >= in) {  // dW^T [in, out] along rows of length out, then transposed
        sde::dense::mm_at_c(batch, in, out, a, cur, dwt);
        for (int64_t o = 0; o < out; ++o) {
          for (int64_t i = 0; i < in; ++i) dW[o * ie + i] = dwt[i * out + o];
        }
      } else {
        sde::dense::mm_ct_a(batch, in, out, a, cur, dW, ie);
      }
      if (time_input) {
        for (int64_t o = 0; o < out; ++o) dW[o * ie + in] = db[o] * tt;
      }
      T* target = l == 0 ? dh : nxt;
      sde::dense::mm_back(batch, in, out, cur, Wl, ie, target);
      if (l > 0) {
        const T* s = ptr<T>(S[l - 1]) + slot * batch * in;
        for (int64_t i = 0; i < batch * in; ++i) target[i] *= s[i];
        std::swap(cur, nxt);
      }
    }
  }
};

// The conv dynamics: its own shifted-sum kernels (compute-bound), on views of our buffers.
template <typename T>
struct ConvKernel : DynKernel<T> {
  const ConvDynamics& dyn;
  int64_t nh = 0, wdim = 0;
  at::Tensor H;                // per slot: a copy of h (the cache refers to it)
  std::vector<Cache> caches;

  ConvKernel(const ConvDynamics& d, int64_t numel_h, int64_t slots, const at::TensorOptions& o, FastWorkspace& ws)
      : dyn(d), nh(numel_h), wdim(d.w_dim()), caches(static_cast<size_t>(slots)) {
    H = ws.get({slots, nh}, o);
  }

  void forward(int64_t slot, double t, const T* h, const T* w, T* fh, bool store) override {
    at::Tensor out = wrap(fh, nh);
    if (store) {
      at::Tensor hs = H[slot];
      std::memcpy(ptr<T>(hs), h, sizeof(T) * nh);
      Cache c;
      dyn.forward_into(t, hs, wrap(w, wdim), &c, out);
      caches[static_cast<size_t>(slot)] = std::move(c);
    } else {
      dyn.forward_into(t, wrap(h, nh), wrap(w, wdim), nullptr, out);
    }
  }

  void vjp(int64_t slot, double t, const T* w, const T* v, T* dh, T* dw) override {
    at::Tensor dh_t = wrap(dh, nh), dw_t = wrap(dw, wdim);
    dyn.vjp_into(t, wrap(w, wdim), caches[static_cast<size_t>(slot)], wrap(v, nh), dh_t, dw_t);
  }

  void forward_vjp(int64_t, double t, const T* h, const T* w, const T* v, T* fh, T* dh, T* dw) override {
    at::Tensor out = wrap(fh, nh), dh_t = wrap(dh, nh), dw_t = wrap(dw, wdim);
    dyn.forward_vjp_into(t, wrap(h, nh), wrap(w, wdim), wrap(v, nh), out, dh_t, dw_t);
  }
};

// ---- the solver ------------------------------------------------------------------------------------

template <typename T>
class Solver : public FastBlockSolver {
 public:
  Solver(const BlockSDE& sde, sde::BrownianMotion& bm, Mode mode, double dt, double adjoint_dt, FastWorkspace& ws)
      : ws_(ws), sde_(sde), bm_(bm), mode_(mode), L_(sde.layout()), sigma_(sde.sigma()), estimator_(sde.estimator()) {
    grid_ = sde::fixed_grid(0.0, 1.0, dt);
    if (mode == Mode::Adjoint) adjoint_grid_ = sde::fixed_grid(0.0, 1.0, adjoint_dt);
    for (const at::Tensor& p : sde.parameters()) params_.push_back(p.detach().contiguous());
  }

  at::Tensor solve(const at::Tensor& y0_in) override {
    at::NoGradGuard no_grad;
    const at::TensorOptions o = y0_in.options();
    const int64_t steps = static_cast<int64_t>(grid_.size()) - 1;
    const bool backprop = mode_ == Mode::Backprop;
    const int64_t slots = backprop ? steps : 1;
    setup(slots, o);
    if (backprop) dWs_ = ws_.get({steps, L_.w_dim}, o);
    at::Tensor y = y0_in.detach().contiguous().clone();
    at::Tensor fh = ws_.get({L_.nh}, o);
    for (int64_t k = 0; k < steps; ++k) {
      const double ta = grid_[static_cast<size_t>(k)], tb = grid_[static_cast<size_t>(k) + 1];
      at::Tensor dW_t = bm_.increment(ta, tb).to(o).contiguous();
      const T* dW = ptr<T>(dW_t);
      if (backprop) {
        std::memcpy(ptr<T>(dWs_) + k * L_.w_dim, dW, sizeof(T) * L_.w_dim);
      }
      euler_step(backprop ? k : 0, ta, tb - ta, dW, ptr<T>(y), ptr<T>(fh), backprop);
      forward_stats.nfe += 2;  // drift and noise, as the engine counts them
      ++forward_stats.steps_accepted;
    }
    t_end = grid_.back();
    if (!all_finite(ptr<T>(y), y.numel())) {
      throw sde::EngineError("ERR_NUMERICAL", "the solution became non-finite by t=" + std::to_string(t_end) +
                                                  "; reduce dt, use adaptive steps or regularise the dynamics");
    }
    if (mode_ == Mode::Adjoint) y1_ = y.clone();
    solved_ = true;
    return y;
  }

  std::pair<at::Tensor, std::vector<at::Tensor>> gradients(const at::Tensor& grad_y1) override {
    if (!solved_ || mode_ == Mode::Forward) throw std::logic_error("FastBlockSolver: gradients before a gradient-mode solve");
    at::NoGradGuard no_grad;
    at::Tensor a = grad_y1.detach().to(y_options_).contiguous().clone();
    return mode_ == Mode::Backprop ? backprop(a) : adjoint(a);
  }

 private:
  void setup(int64_t slots, const at::TensorOptions& o) {
    y_options_ = o;
    ws_.rewind();
    hyper_ = HyperKernel<T>();
    hyper_.init(sde_.hypernet(), params_, slots, ws_);
    if (const auto* mlp = dynamic_cast<const MlpDynamics*>(&sde_.dynamics())) {
      dyn_ = std::make_unique<MlpKernel<T>>(*mlp, L_.batch, slots, o, ws_);
    } else if (const auto* conv = dynamic_cast<const ConvDynamics*>(&sde_.dynamics())) {
      dyn_ = std::make_unique<ConvKernel<T>>(*conv, L_.nh, slots, o, ws_);
    } else {
      throw std::logic_error("FastBlockSolver: unknown dynamics");
    }
    const int64_t nh = L_.nh, wd = L_.w_dim;
    work_ = ws_.get({2 * nh + 5 * wd}, o);
  }

  // y <- y + f(ta, y) dt + G dW (Ito Euler-Maruyama), evaluating (and storing at `slot`) the
  // hypernetwork and the dynamics at (ta, y).
  void euler_step(int64_t slot, double ta, double dt, const T* dW, T* y, T* fh, bool store) {
    const int64_t nh = L_.nh, wd = L_.w_dim;
    T* yh = y;
    T* yw = y + nh;
    T* ykl = y + nh + wd;
    const T* g = hyper_.forward(slot, yw, ta);
    dyn_->forward(slot, ta, yh, yw, fh, store);
    const T kl_rate = dot(wd, g, g) * static_cast<T>(0.5 / (sigma_ * sigma_));
    const T g_dW = L_.tail == 2 ? dot(wd, g, dW) : T(0);
    const T h = static_cast<T>(dt), s = static_cast<T>(sigma_);
    for (int64_t i = 0; i < nh; ++i) yh[i] += h * fh[i];
    for (int64_t i = 0; i < wd; ++i) yw[i] += h * (g[i] - yw[i]) + s * dW[i];
    ykl[0] += h * kl_rate;
    if (L_.tail == 2) ykl[1] += g_dW / s;
  }

  // Rows and inputs of every banked step for the hypernetwork's weight gradients.
  struct Bank {
    std::vector<at::Tensor> rows;    // [steps, out_j]
    std::vector<at::Tensor> inputs;  // [steps, in_j]
  };
  Bank make_bank(int64_t steps, bool own_inputs) {
    Bank bank;
    for (int64_t j = 0; j < hyper_.n; ++j) {
      bank.rows.push_back(ws_.get({steps, hyper_.sizes[j + 1]}, y_options_));
      bank.inputs.push_back(own_inputs ? ws_.get({steps, hyper_.sizes[j]}, y_options_) : hyper_.A[j]);
    }
    return bank;
  }
  std::vector<T*> rows_at(Bank& bank, int64_t k) {
    std::vector<T*> rows;
    for (int64_t j = 0; j < hyper_.n; ++j) rows.push_back(ptr<T>(bank.rows[j]) + k * hyper_.sizes[j + 1]);
    return rows;
  }
  // dW_j = sign * rows_j^T inputs_j, db_j = sign * sum of rows_j, by our own kernel: at::mm sent
  // these (20 x 64 by 20 x 1284 on W1) to a multithreaded BLAS whose wake-ups and zeroing of the
  // output cost more than the product itself.
  std::vector<at::Tensor> bank_gradients(const Bank& bank, double sign) {
    std::vector<at::Tensor> grads;
    const T sg = static_cast<T>(sign);
    for (int64_t j = 0; j < hyper_.n; ++j) {
      const int64_t steps = bank.rows[j].size(0), in = hyper_.sizes[j], out = hyper_.sizes[j + 1];
      at::Tensor dW = at::empty({out, in}, y_options_);
      at::Tensor db = at::empty({out}, y_options_);
      const T* rows = ptr<T>(bank.rows[j]);
      sde::dense::mm_ct_a(steps, in, out, ptr<T>(bank.inputs[j]), rows, ptr<T>(dW), in);
      T* b = ptr<T>(db);
      for (int64_t o = 0; o < out; ++o) b[o] = 0;
      for (int64_t k = 0; k < steps; ++k) sde::dense::axpy(out, T(1), rows + k * out, b);
      if (sign != 1.0) {
        T* w = ptr<T>(dW);
        for (int64_t i = 0; i < out * in; ++i) w[i] *= sg;
        for (int64_t o = 0; o < out; ++o) b[o] *= sg;
      }
      grads.push_back(dW);
      grads.push_back(db);
    }
    return grads;
  }

  // The exact reverse sweep of the stored Euler steps.
  std::pair<at::Tensor, std::vector<at::Tensor>> backprop(at::Tensor a) {
    const int64_t nh = L_.nh, wd = L_.w_dim;
    const int64_t steps = static_cast<int64_t>(grid_.size()) - 1;
    T* a_h = ptr<T>(a);
    T* a_w = a_h + nh;
    const T a_kl = a_h[nh + wd];
    const T a_db = L_.tail == 2 ? a_h[nh + wd + 1] : T(0);
    T* v = ptr<T>(work_);
    T* dh = v + nh;
    T* vp = dh + nh;
    T* vx = vp + wd;
    T* dw_dyn = vx + wd;
    T* dw_hyp = dw_dyn + wd;
    const T s = static_cast<T>(sigma_);
    const T c_kl = a_kl / (s * s);
    const T c_db = a_db / s;
    Bank bank = make_bank(steps, false);
    for (int64_t k = steps - 1; k >= 0; --k) {
      const double ta = grid_[static_cast<size_t>(k)];
      const T h = static_cast<T>(grid_[static_cast<size_t>(k) + 1] - ta);
      const T* g = hyper_.g_of(k);
      const T* w = hyper_.w_of(k);
      const T* dW = ptr<T>(dWs_) + k * wd;
      // cotangents of g: dt (g - w) and dt 0.5 |g|^2 / sigma^2 (+ the u . dB term: fmc to the
      // parameters and w, stl to w only)
      for (int64_t i = 0; i < wd; ++i) vp[i] = h * a_w[i] + (h * c_kl) * g[i];
      if (estimator_ == Estimator::Fmc) {
        for (int64_t i = 0; i < wd; ++i) vp[i] += c_db * dW[i];
      } else if (estimator_ == Estimator::Stl) {
        for (int64_t i = 0; i < wd; ++i) vx[i] = c_db * dW[i];
      }
      for (int64_t i = 0; i < nh; ++i) v[i] = h * a_h[i];
      dyn_->vjp(k, ta, w, v, dh, dw_dyn);
      hyper_.vjp(k, vp, estimator_ == Estimator::Stl ? vx : nullptr, dw_hyp, rows_at(bank, k));
      for (int64_t i = 0; i < nh; ++i) a_h[i] += dh[i];
      for (int64_t i = 0; i < wd; ++i) a_w[i] += (dw_dyn[i] + dw_hyp[i]) - h * a_w[i];
      ++backward_stats.steps_accepted;
    }
    return {a, bank_gradients(bank, 1.0)};
  }

  // The stochastic adjoint (ckl): Euler on the backward system (y, a, a_theta) from t = 1 to 0,
  // reconstructing y from y(1) on the same Brownian path (as sde::adjoint_gradients does).
  std::pair<at::Tensor, std::vector<at::Tensor>> adjoint(at::Tensor a) {
    const int64_t nh = L_.nh, wd = L_.w_dim;
    const int64_t steps = static_cast<int64_t>(adjoint_grid_.size()) - 1;
    at::Tensor y = y1_.clone();
    T* yh = ptr<T>(y);
    T* yw = yh + nh;
    T* ykl = yw + wd;
    T* a_h = ptr<T>(a);
    T* a_w = a_h + nh;
    const T a_kl = a_h[nh + wd];
    at::Tensor fh_t = ws_.get({nh}, y_options_);
    T* fh = ptr<T>(fh_t);
    T* v = ptr<T>(work_);
    T* dh = v + nh;
    T* vp = dh + nh;
    T* dw_dyn = vp + 2 * wd;
    T* dw_hyp = dw_dyn + wd;
    const T s = static_cast<T>(sigma_);
    const T c_kl = a_kl / (s * s);
    Bank bank = make_bank(steps, true);
    for (int64_t i = steps - 1; i >= 0; --i) {
      const double ta = adjoint_grid_[static_cast<size_t>(i) + 1], tb = adjoint_grid_[static_cast<size_t>(i)];
      const T h = static_cast<T>(tb - ta);  // negative
      at::Tensor dW_t = bm_.increment(tb, ta).to(y_options_).contiguous();  // W(ta) - W(tb): negated below
      const T* dWp = ptr<T>(dW_t);
      const T* g = hyper_.forward(0, yw, ta);
      for (int64_t j = 0; j < nh; ++j) v[j] = h * a_h[j];
      dyn_->forward_vjp(0, ta, yh, yw, v, fh, dh, dw_dyn);
      const T kl_rate = dot(wd, g, g) * static_cast<T>(0.5 / (sigma_ * sigma_));
      for (int64_t j = 0; j < wd; ++j) vp[j] = h * a_w[j] + (h * c_kl) * g[j];
      hyper_.vjp(0, vp, nullptr, dw_hyp, rows_at(bank, i));
      for (int64_t j = 0; j < hyper_.n; ++j) {
        const int64_t in = hyper_.sizes[j];
        std::memcpy(ptr<T>(bank.inputs[j]) + i * in, ptr<T>(hyper_.A[j]), sizeof(T) * in);
      }
      // z <- z + (F, -a . dF/dy, -a . dF/dtheta), F = f dt + sigma dW on w
      for (int64_t j = 0; j < nh; ++j) {
        yh[j] += h * fh[j];
        a_h[j] -= dh[j];
      }
      for (int64_t j = 0; j < wd; ++j) {
        yw[j] += h * (g[j] - yw[j]) - s * dWp[j];
        a_w[j] -= (dw_dyn[j] + dw_hyp[j]) - h * a_w[j];
      }
      ykl[0] += h * kl_rate;
      backward_stats.nfe += 2;
      ++backward_stats.steps_accepted;
    }
    return {a, bank_gradients(bank, -1.0)};
  }

  FastWorkspace& ws_;
  const BlockSDE& sde_;
  sde::BrownianMotion& bm_;
  Mode mode_;
  BlockLayout L_;
  double sigma_;
  Estimator estimator_;
  std::vector<double> grid_, adjoint_grid_;
  std::vector<at::Tensor> params_;
  at::TensorOptions y_options_;
  HyperKernel<T> hyper_;
  std::unique_ptr<DynKernel<T>> dyn_;
  at::Tensor work_, dWs_, y1_;
  bool solved_ = false;
};

}  // namespace

bool FastBlockSolver::supported(const BnnConfig& c, Mode mode) {
  if (!c.fast || !c.fused) return false;
  if (!c.device.is_cpu()) return false;  // the raw loops read host memory; accelerators take the generic route
  if (c.dtype != c10::kFloat && c.dtype != c10::kDouble) return false;
  if (c.solver.method != sde::Method::Euler || c.solver.adaptive) return false;
  if (mode == Mode::Adjoint) {
    // The engine's Euler adjoint needs additive noise (ckl); fmc/stl need a Stratonovich adjoint.
    if (c.solver.adjoint_method != sde::Method::Euler || c.solver.adjoint_adaptive) return false;
    if (c.estimator != Estimator::Ckl) return false;
  }
  return true;
}

std::unique_ptr<FastBlockSolver> FastBlockSolver::make(const BlockSDE& sde, sde::BrownianMotion& bm, Mode mode, double dt,
                                                       double adjoint_dt, FastWorkspace& workspace) {
  if (sde.parameters().front().scalar_type() == c10::kDouble) {
    return std::make_unique<Solver<double>>(sde, bm, mode, dt, adjoint_dt, workspace);
  }
  return std::make_unique<Solver<float>>(sde, bm, mode, dt, adjoint_dt, workspace);
}

at::Tensor FastWorkspace::get(at::IntArrayRef shape, const at::TensorOptions& options) {
  if (next_ < pool_.size()) {
    at::Tensor& t = pool_[next_];
    // Reused only when nothing else still holds it (a previous solve's results, say).
    if (t.sizes() == shape && t.scalar_type() == options.dtype().toScalarType() && t.device() == options.device() &&
        t.use_count() == 1) {
      ++next_;
      return t;
    }
    t = at::empty(shape, options);
    ++next_;
    return t;
  }
  pool_.push_back(at::empty(shape, options));
  return pool_[next_++];
}

}  // namespace bnn
