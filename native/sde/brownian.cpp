// The Brownian interval (Kidger et al. 2021; torchsde's BrownianInterval) in C++.
//
// A binary tree of intervals over [t0, t1]. The root holds W and H (space-time Levy area) of the
// whole interval; a node that is split draws its children's values from the exact conditional
// (bridge) law given its own, with noise that is a pure function of the node's seed, so any node
// can be recomputed from its parent bit for bit. Seeds depend only on the node's position
// (left/right path from the root). Values live in an LRU cache of `cache_size` slots; a miss
// walks up to a cached ancestor (or the root) and recomputes down.
//
// Two kernels: on CPU, hand-written loops over slot memory with a counter-based normal generator
// (no allocation, no ATen dispatch per query: queries of a few hundred elements cost microseconds);
// elsewhere (CUDA), the same formulas with ATen ops on the device, noise drawn on CPU and copied.
#include "sde/brownian.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <tuple>

#include "sde/cpu_dispatch.h"
#include "sde/errors.h"
#include "sde/rng.h"

namespace sde {
namespace {

// Stream tags, so the noises of one node and its children's seeds never coincide.
constexpr uint64_t kTagLeft = 0x6a09e667f3bcc908ULL;
constexpr uint64_t kTagRight = 0xbb67ae8584caa73bULL;
constexpr uint64_t kTagX1 = 0x3c6ef372fe94f82bULL;
constexpr uint64_t kTagX2 = 0xa54ff53a5f1d36f1ULL;
constexpr uint64_t kTagRootW = 0x510e527fade682d1ULL;
constexpr uint64_t kTagRootH = 0x9b05688c2b3e6c1fULL;

using rng::derive;
using rng::fill_normals;
using rng::for_blocks;
using rng::kBlock;
using rng::normals_block;

// Coefficients of a split of [s, t] at u (p = (u-s)/h, q = (t-u)/h), written in p and q so
// that tiny intervals neither underflow nor divide 0 by 0. With X1, X2 ~ N(0, 1):
//   W_L = p W + 6pq H + th X1,      W_R = W - W_L
//   H_L = p^2 H - a X1 + cr X2,     H_R = q^2 H - b X1 - cl X2
// Jointly Gaussian with Var W_L = ph, Var H_L = ph/12 (and for R), all other covariances 0,
// and H of the parent recovered from the children (torchsde's _split_exact, rearranged).
// Without Levy area: W_L = p W + sqrt(pqh) X1.
struct SplitCoef {
  double p, q, c6, th, a, b, cr, cl, bridge_sd;
};

SplitCoef split_coef(double start, double mid, double end) {
  const double h = end - start;
  const double p = (mid - start) / h, q = (end - mid) / h;
  const double sh = std::sqrt(h);
  const double cubes = p * p * p + q * q * q;  // >= 1/4
  const double v = 0.5 * std::sqrt(p * q / cubes);
  const double r3 = 0.57735026918962576451;  // 1/sqrt(3)
  return SplitCoef{p,
                   q,
                   6.0 * p * q,
                   2.0 * sh * v * cubes,
                   v * p * p * sh,
                   v * q * q * sh,
                   v * q * sh * r3,
                   v * p * sh * r3,
                   std::sqrt(p * q * h)};
}

// The split formulas over one block (free functions so they get the vector clones too).
template <typename T>
SDEBNN_CPU_CLONES_EXACT void bridge_block(const SplitCoef& c, const T* W, const T* x, T* WL, T* WR, int64_t m) {
  const T p = static_cast<T>(c.p), sd = static_cast<T>(c.bridge_sd);
  for (int64_t j = 0; j < m; ++j) {
    const T l = p * W[j] + sd * x[j];
    WL[j] = l;
    WR[j] = W[j] - l;
  }
}

template <typename T>
SDEBNN_CPU_CLONES_EXACT void levy_bridge_block(const SplitCoef& c, const T* W, const T* H, const T* x1, const T* x2,
                                               T* WL, T* HL, T* WR, T* HR, int64_t m) {
  const T p = static_cast<T>(c.p), c6 = static_cast<T>(c.c6), th = static_cast<T>(c.th);
  const T p2 = static_cast<T>(c.p * c.p), q2 = static_cast<T>(c.q * c.q);
  const T a = static_cast<T>(c.a), b = static_cast<T>(c.b), cr = static_cast<T>(c.cr), cl = static_cast<T>(c.cl);
  for (int64_t j = 0; j < m; ++j) {
    const T w = W[j], h = H[j], u1 = x1[j], u2 = x2[j];
    const T l = p * w + c6 * h + th * u1;
    WL[j] = l;
    WR[j] = w - l;
    HL[j] = p2 * h - a * u1 + cr * u2;
    HR[j] = q2 * h - b * u1 - cl * u2;
  }
}

struct Node {
  double start, end;
  double mid;      // split point; NaN for a leaf
  int32_t parent;  // -1 for the root
  int32_t left;    // -1 for a leaf; the right child is left + 1
  int32_t slot;    // cache slot holding (W, H), or -1
  uint64_t seed;
};

std::string fmt(double x) {  // shortest round-trip form, as JS prints numbers
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

class BrownianInterval final : public BrownianMotion {
 public:
  explicit BrownianInterval(const BrownianIntervalOptions& o) : shape_(o.shape) {
    if (!std::isfinite(o.t0) || !std::isfinite(o.t1) || !(o.t0 < o.t1)) {
      throw invalid_argument("BrownianInterval: expected finite t0 < t1 but received t0=" + fmt(o.t0) +
                             ", t1=" + fmt(o.t1));
    }
    if (!std::isfinite(o.dt_hint) || o.dt_hint < 0) {
      throw invalid_argument("BrownianInterval: expected a non-negative dt_hint but received " + fmt(o.dt_hint));
    }
    if (o.cache_size < 3) {
      // A split needs its parent and both children in the cache at once.
      throw invalid_argument("BrownianInterval: expected cache_size >= 3 but received " + std::to_string(o.cache_size));
    }
    numel_ = 1;
    for (int64_t d : shape_) {
      if (d < 0) throw invalid_argument("BrownianInterval: negative size in shape");
      numel_ *= d;
    }
    const at::ScalarType dtype = c10::typeMetaToScalarType(o.options.dtype());
    if (dtype != at::kFloat && dtype != at::kDouble) {
      throw invalid_argument("BrownianInterval: expected dtype float32 or float64");
    }
    options_ = at::TensorOptions().dtype(dtype).device(o.options.device());
    t0_ = o.t0;
    t1_ = o.t1;
    levy_ = o.levy_area;
    cache_size_ = o.cache_size;
    dt_hint_ = o.dt_hint;
    rows_ = levy_ ? 2 : 1;
    // SDEBNN_BROWNIAN_GENERIC=1 runs the device (ATen) kernels on CPU too, so tests can check
    // them on machines without a GPU.
    const char* generic = std::getenv("SDEBNN_BROWNIAN_GENERIC");
    fast_ = options_.device().is_cpu() && !(generic && std::string(generic) == "1");

    lru_prev_.assign(cache_size_, -1);
    lru_next_.assign(cache_size_, -1);
    owner_.assign(cache_size_, -1);

    const uint64_t root_seed = rng::splitmix64(o.seed);
    nodes_.push_back(Node{t0_, t1_, std::numeric_limits<double>::quiet_NaN(), -1, -1, -1, root_seed});
    root_ = at::empty({rows_, numel_}, options_);
    const double h = t1_ - t0_;
    at::Tensor host = fast_ ? root_ : at::empty({rows_, numel_}, options_.device(at::kCPU));
    AT_DISPATCH_FLOATING_TYPES(host.scalar_type(), "brownian_root", [&] {
      scalar_t* p = host.data_ptr<scalar_t>();
      fill_normals<scalar_t>(derive(root_seed, kTagRootW), static_cast<scalar_t>(std::sqrt(h)), p, numel_);
      if (levy_)
        fill_normals<scalar_t>(derive(root_seed, kTagRootH), static_cast<scalar_t>(std::sqrt(h / 12)), p + numel_,
                               numel_);
    });
    if (!fast_) root_.copy_(host);
    if (fast_) root_ptr_ = root_.data_ptr();

    tree_dt_ = h;
    if (dt_hint_ > 0) create_dependency_tree(dt_hint_);
  }

  at::Tensor increment(double s, double t) override {
    at::Tensor W = at::empty(shape_, options_);
    increment_into(s, t, W);
    return W;
  }

  std::pair<at::Tensor, at::Tensor> increment_and_levy_area(double s, double t) override {
    at::Tensor W = at::empty(shape_, options_);
    at::Tensor H = at::empty(shape_, options_);
    increment_and_levy_area_into(s, t, W, H);
    return {W, H};
  }

  void increment_into(double s, double t, const at::Tensor& W) override {
    std::lock_guard<std::mutex> lock(mutex_);
    check_query(s, t, "increment");
    check_out(W, "W");
    if (s == t) {
      W.zero_();
      return;
    }
    query(s, t, W, nullptr);
  }

  void increment_and_levy_area_into(double s, double t, const at::Tensor& W, const at::Tensor& H) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!levy_) {
      throw invalid_argument("increment_and_levy_area: this Brownian interval was made without levy_area");
    }
    check_query(s, t, "increment_and_levy_area");
    check_out(W, "W");
    check_out(H, "H");
    if (s == t) {
      W.zero_();
      H.zero_();
      return;
    }
    query(s, t, W, &H);
  }

  bool has_levy_area() const override { return levy_; }
  double t0() const override { return t0_; }
  double t1() const override { return t1_; }
  const std::vector<int64_t>& shape() const override { return shape_; }
  const c10::TensorOptions& options() const override { return options_; }

  BrownianIntervalStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return BrownianIntervalStats{used_, cache_size_, static_cast<int64_t>(nodes_.size()), splits_computed_};
  }

 private:
  void check_query(double s, double t, const char* what) const {
    if (s >= t0_ && t <= t1_ && s <= t) return;  // the hot path: no strings built
    auto bad = [&](const std::string& why) { return invalid_argument(std::string(what) + ": " + why); };
    if (std::isnan(s)) throw bad("s is NaN");
    if (std::isnan(t)) throw bad("t is NaN");
    const std::string range = "[" + fmt(t0_) + ", " + fmt(t1_) + "]";
    if (s < t0_ || s > t1_) throw bad("s=" + fmt(s) + " is outside " + range);
    if (t < t0_ || t > t1_) throw bad("t=" + fmt(t) + " is outside " + range);
    throw bad("expected s <= t but received s=" + fmt(s) + " > t=" + fmt(t));
  }

  void check_out(const at::Tensor& out, const char* name) const {
    if (out.numel() != numel_ || !out.sizes().equals(shape_)) {
      throw invalid_argument(std::string("BrownianInterval: output ") + name + " has the wrong shape");
    }
  }

  // ---- the tree --------------------------------------------------------------------------

  void split(int32_t n, double mid) {
    const int32_t left = static_cast<int32_t>(nodes_.size());
    if (left > std::numeric_limits<int32_t>::max() - 2)
      throw EngineError("ERR_NATIVE", "BrownianInterval: too many nodes");
    Node& p = nodes_[n];
    p.mid = mid;
    p.left = left;
    const Node l{p.start, mid, std::numeric_limits<double>::quiet_NaN(), n, -1, -1, derive(p.seed, kTagLeft)};
    const Node r{mid, p.end, std::numeric_limits<double>::quiet_NaN(), n, -1, -1, derive(p.seed, kTagRight)};
    nodes_.push_back(l);  // invalidates p
    nodes_.push_back(r);
  }

  // Fills found_ with the nodes that tile [s, t], left to right, splitting leaves at s and t
  // where needed. Starts from the last node used: sequential queries are near each other.
  void locate(double s, double t) {
    found_.clear();
    int32_t n = last_;
    while (!(nodes_[n].start <= s && t <= nodes_[n].end)) n = nodes_[n].parent;
    pending_.clear();
    double a = s, b = t;
    for (;;) {
      const Node& x = nodes_[n];
      if (a == x.start && b == x.end) {
        found_.push_back(n);
        if (pending_.empty()) break;
        std::tie(n, a, b) = pending_.back();
        pending_.pop_back();
        continue;
      }
      if (x.left < 0) {
        if (a == x.start) {
          split(n, b);
          n = nodes_[n].left;
        } else {
          split(n, a);
          n = nodes_[n].left + 1;
        }
        continue;
      }
      if (b <= x.mid) {
        n = x.left;
      } else if (a >= x.mid) {
        n = x.left + 1;
      } else {
        pending_.emplace_back(x.left + 1, x.mid, b);  // after the left part
        b = x.mid;
        n = x.left;
      }
    }
  }

  // torchsde's dependency tree: pre-split dyadically down to pieces of about 0.8 * levels * dt,
  // so a query walks O(log) levels plus a chain no longer than the cache holds. torchsde caches
  // one entry per level (levels = cache); we cache both children, so a level costs two entries.
  // Only leaves are split, so earlier answers never change.
  void create_dependency_tree(double dt) {
    const double cache = static_cast<double>(std::min<int64_t>(cache_size_, 100)) / 2;
    tree_dt_ = std::min(tree_dt_, dt);
    // At most 2^16 pieces: bounds the bookkeeping for absurdly small hints.
    const double piece = std::max(tree_dt_ * cache * 0.8, (t1_ - t0_) * 0x1p-16);
    std::vector<int32_t> stack{0};
    while (!stack.empty()) {
      const int32_t n = stack.back();
      stack.pop_back();
      if (nodes_[n].end - nodes_[n].start <= piece) continue;
      if (nodes_[n].left < 0) split(n, 0.5 * (nodes_[n].start + nodes_[n].end));
      stack.push_back(nodes_[n].left + 1);
      stack.push_back(nodes_[n].left);
    }
  }

  // Without a hint, estimate the step from the queries after a warm-up (as torchsde does).
  void observe_step(double dt) {
    if (dt_hint_ > 0) return;
    if (++evaluations_ <= 0) return;
    average_dt_ = (dt + average_dt_ * static_cast<double>(evaluations_ - 1)) / static_cast<double>(evaluations_);
    if (average_dt_ < 0.5 * tree_dt_) create_dependency_tree(dt);
  }

  // ---- the cache --------------------------------------------------------------------------

  void unlink(int32_t slot) {
    const int32_t p = lru_prev_[slot], n = lru_next_[slot];
    if (p >= 0)
      lru_next_[p] = n;
    else
      head_ = n;
    if (n >= 0)
      lru_prev_[n] = p;
    else
      tail_ = p;
  }
  void push_front(int32_t slot) {
    lru_prev_[slot] = -1;
    lru_next_[slot] = head_;
    if (head_ >= 0) lru_prev_[head_] = slot;
    head_ = slot;
    if (tail_ < 0) tail_ = slot;
  }
  void touch(int32_t slot) {
    if (head_ == slot) return;
    unlink(slot);
    push_front(slot);
  }

  // A slot for node n (most recently used), evicting the least recently used entry if full.
  int32_t acquire(int32_t n) {
    int32_t slot = nodes_[n].slot;
    if (slot >= 0) {
      touch(slot);
      return slot;
    }
    if (used_ < cache_size_) {
      slot = static_cast<int32_t>(used_++);
      slots_.push_back(at::empty({rows_, numel_}, options_));
      slot_ptr_.push_back(fast_ ? slots_.back().data_ptr() : nullptr);
      push_front(slot);
    } else {
      slot = tail_;
      nodes_[owner_[slot]].slot = -1;
      touch(slot);
    }
    owner_[slot] = n;
    nodes_[n].slot = slot;
    return slot;
  }

  // Makes node n's (W, H) available (root, cached, or recomputed from the nearest cached
  // ancestor down), and marks it most recently used.
  void ensure(int32_t n) {
    if (n == 0) return;
    if (nodes_[n].slot >= 0) {
      touch(nodes_[n].slot);
      return;
    }
    path_.clear();
    for (int32_t m = n; m != 0 && nodes_[m].slot < 0; m = nodes_[m].parent) path_.push_back(m);
    for (auto it = path_.rbegin(); it != path_.rend(); ++it) compute_children(nodes_[*it].parent);
  }

  // Writes both children of p from p's value (p itself stays cached: touched first, and the
  // cache holds at least three entries).
  void compute_children(int32_t p) {
    ++splits_computed_;
    if (p != 0) touch(nodes_[p].slot);
    const int32_t left = nodes_[p].left;
    acquire(left);
    acquire(left + 1);
    const Node& x = nodes_[p];
    const SplitCoef c = split_coef(x.start, x.mid, x.end);
    const uint64_t k1 = derive(x.seed, kTagX1), k2 = derive(x.seed, kTagX2);
    if (fast_) {
      AT_DISPATCH_FLOATING_TYPES(options_.dtype().toScalarType(), "brownian_split", [&] {
        split_cpu<scalar_t>(c, k1, k2, value_ptr<scalar_t>(p), value_ptr<scalar_t>(left),
                            value_ptr<scalar_t>(left + 1));
      });
    } else {
      split_generic(c, k1, k2, value(p), slots_[nodes_[left].slot], slots_[nodes_[left + 1].slot]);
    }
  }

  template <typename T>
  T* value_ptr(int32_t n) {
    return static_cast<T*>(n == 0 ? root_ptr_ : slot_ptr_[nodes_[n].slot]);
  }
  const at::Tensor& value(int32_t n) { return n == 0 ? root_ : slots_[nodes_[n].slot]; }

  template <typename T>
  void split_cpu(const SplitCoef& c, uint64_t k1, uint64_t k2, const T* src, T* dl, T* dr) {
    const int64_t n = numel_;
    const bool levy = levy_;
    for_blocks(n, [&](int64_t i0, int64_t m) {
      alignas(64) T x1[kBlock];
      alignas(64) T x2[kBlock];
      normals_block(k1, i0, x1, m);
      if (!levy) {
        bridge_block(c, src + i0, x1, dl + i0, dr + i0, m);
        return;
      }
      normals_block(k2, i0, x2, m);
      levy_bridge_block(c, src + i0, src + n + i0, x1, x2, dl + i0, dl + n + i0, dr + i0, dr + n + i0, m);
    });
  }

  // Drawn on the host; for CUDA into pinned memory and copied without blocking, so the host runs
  // ahead of the device instead of waiting for each copy (the caching host allocator keeps the
  // buffer until its copy is done).
  at::Tensor noise_on_device(uint64_t key) {
    const bool cuda = options_.device().is_cuda();
    at::Tensor host = at::empty({numel_}, options_.device(at::kCPU).pinned_memory(cuda));
    AT_DISPATCH_FLOATING_TYPES(host.scalar_type(), "brownian_noise",
                               [&] { fill_normals<scalar_t>(key, scalar_t(1), host.data_ptr<scalar_t>(), numel_); });
    return host.to(options_, /*non_blocking=*/cuda);
  }

  void split_generic(const SplitCoef& c, uint64_t k1, uint64_t k2, const at::Tensor& src, const at::Tensor& dl,
                     const at::Tensor& dr) {
    const at::Tensor x1 = noise_on_device(k1);
    const at::Tensor W = src[0];
    if (!levy_) {
      at::Tensor l = W * c.p + x1 * c.bridge_sd;
      dl[0].copy_(l);
      dr[0].copy_(W - l);
      return;
    }
    const at::Tensor x2 = noise_on_device(k2);
    const at::Tensor H = src[1];
    at::Tensor l = W * c.p + H * c.c6 + x1 * c.th;
    dl[0].copy_(l);
    dr[0].copy_(W - l);
    dl[1].copy_(H * (c.p * c.p) - x1 * c.a + x2 * c.cr);
    dr[1].copy_(H * (c.q * c.q) - x1 * c.b - x2 * c.cl);
  }

  // ---- queries ----------------------------------------------------------------------------

  // W (and H if asked) of [s, t], s < t: the tiling nodes' values, combined left to right with
  // H_{s,v} = ((v-u)(H_{u,v} + W_{s,u}/2) + (u-s)(H_{s,u} - W_{u,v}/2)) / (v-s).
  void query(double s, double t, const at::Tensor& W, const at::Tensor* H) {
    observe_step(t - s);
    locate(s, t);
    last_ = found_.back();
    auto direct = [&](const at::Tensor& x) {
      return x.device().is_cpu() && x.scalar_type() == options_.dtype().toScalarType() && x.is_contiguous();
    };
    if (fast_ && direct(W) && (!H || direct(*H))) {
      AT_DISPATCH_FLOATING_TYPES(W.scalar_type(), "brownian_query", [&] {
        query_cpu<scalar_t>(s, W.data_ptr<scalar_t>(), H ? H->data_ptr<scalar_t>() : nullptr);
      });
      return;
    }
    if (fast_) {  // an output elsewhere or strided: compute here, then copy
      at::Tensor w = at::empty(shape_, options_);
      at::Tensor h = H ? at::empty(shape_, options_) : at::Tensor();
      AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "brownian_query", [&] {
        query_cpu<scalar_t>(s, w.data_ptr<scalar_t>(), H ? h.data_ptr<scalar_t>() : nullptr);
      });
      W.copy_(w);
      if (H) H->copy_(h);
      return;
    }
    at::Tensor w = at::empty({numel_}, options_);
    at::Tensor h = H ? at::empty({numel_}, options_) : at::Tensor();
    for (size_t i = 0; i < found_.size(); ++i) {
      const int32_t n = found_[i];
      ensure(n);
      const at::Tensor& v = value(n);
      if (i == 0) {
        w.copy_(v[0]);
        if (H) h.copy_(v[1]);
        continue;
      }
      if (H) {
        const Node& x = nodes_[n];
        const double alpha = (x.end - x.start) / (x.end - s), beta = (x.start - s) / (x.end - s);
        h.copy_((v[1] + w * 0.5) * alpha + (h - v[0] * 0.5) * beta);
      }
      w.add_(v[0]);
    }
    W.copy_(w.view(shape_));
    if (H) H->copy_(h.view(shape_));
  }

  template <typename T>
  void query_cpu(double s, T* w, T* h) {
    const int64_t n = numel_;
    for (size_t i = 0; i < found_.size(); ++i) {
      const int32_t id = found_[i];
      ensure(id);
      const T* vw = value_ptr<T>(id);
      const T* vh = vw + n;
      if (i == 0) {
        std::memcpy(w, vw, static_cast<size_t>(n) * sizeof(T));
        if (h) std::memcpy(h, vh, static_cast<size_t>(n) * sizeof(T));
        continue;
      }
      if (h) {
        const Node& x = nodes_[id];
        const T alpha = static_cast<T>((x.end - x.start) / (x.end - s));
        const T beta = static_cast<T>((x.start - s) / (x.end - s));
        for (int64_t j = 0; j < n; ++j) h[j] = alpha * (vh[j] + T(0.5) * w[j]) + beta * (h[j] - T(0.5) * vw[j]);
      }
      for (int64_t j = 0; j < n; ++j) w[j] += vw[j];
    }
  }

  std::vector<int64_t> shape_;
  c10::TensorOptions options_;
  int64_t numel_ = 0;
  int64_t rows_ = 1;
  double t0_ = 0, t1_ = 1;
  bool levy_ = false;
  bool fast_ = true;
  int64_t cache_size_ = 45;
  double dt_hint_ = 0;

  std::vector<Node> nodes_;
  int32_t last_ = 0;
  std::vector<int32_t> found_;
  std::vector<std::tuple<int32_t, double, double>> pending_;
  std::vector<int32_t> path_;

  at::Tensor root_;
  void* root_ptr_ = nullptr;
  std::vector<at::Tensor> slots_;
  std::vector<void*> slot_ptr_;
  std::vector<int32_t> lru_prev_, lru_next_, owner_;
  int32_t head_ = -1, tail_ = -1;
  int64_t used_ = 0;
  int64_t splits_computed_ = 0;

  double tree_dt_ = 1;
  double average_dt_ = 0;
  int64_t evaluations_ = -100;  // torchsde's warm-up before trusting the average step

  mutable std::mutex mutex_;
};

}  // namespace

std::unique_ptr<BrownianMotion> make_brownian_interval(const BrownianIntervalOptions& options) {
  return std::make_unique<BrownianInterval>(options);
}

BrownianIntervalStats brownian_interval_stats(const BrownianMotion& bm) {
  const auto* interval = dynamic_cast<const BrownianInterval*>(&bm);
  if (interval == nullptr) throw invalid_argument("brownian_interval_stats: not a Brownian interval");
  return interval->stats();
}

namespace {

// Zero increments and Levy areas: the same solvers then take the deterministic (zero-noise) path.
class ZeroBrownian final : public BrownianMotion {
 public:
  explicit ZeroBrownian(const BrownianIntervalOptions& o)
      : t0_(o.t0), t1_(o.t1), shape_(o.shape), options_(o.options) {}
  at::Tensor increment(double, double) override { return at::zeros(shape_, options_); }
  std::pair<at::Tensor, at::Tensor> increment_and_levy_area(double, double) override {
    return {at::zeros(shape_, options_), at::zeros(shape_, options_)};
  }
  void increment_into(double, double, const at::Tensor& W) override { W.zero_(); }
  void increment_and_levy_area_into(double, double, const at::Tensor& W, const at::Tensor& H) override {
    W.zero_();
    H.zero_();
  }
  bool has_levy_area() const override { return true; }
  double t0() const override { return t0_; }
  double t1() const override { return t1_; }
  const std::vector<int64_t>& shape() const override { return shape_; }
  const c10::TensorOptions& options() const override { return options_; }

 private:
  double t0_, t1_;
  std::vector<int64_t> shape_;
  c10::TensorOptions options_;
};

}  // namespace

std::unique_ptr<BrownianMotion> make_zero_brownian(const BrownianIntervalOptions& options) {
  return std::make_unique<ZeroBrownian>(options);
}

}  // namespace sde
