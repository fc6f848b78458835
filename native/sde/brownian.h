// Brownian motion sources for the solvers. The adjoint replays the forward path exactly,
// queried backwards and at arbitrary sub-intervals, so every source here is a pure function of
// (seed, query history) and answers a repeated query identically.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace sde {

class BrownianMotion {
 public:
  virtual ~BrownianMotion() = default;

  // W(t) - W(s) for t0 <= s <= t <= t1, shaped `shape()`.
  virtual at::Tensor increment(double s, double t) = 0;

  // (W(t) - W(s), H(s, t)): the increment and the space-time Levy area
  //   H(s,t) = 1/(t-s) * integral_s^t (W(r) - W(s)) dr - 0.5 * (W(t) - W(s)),
  // needed by the srk solvers. Sources without it throw.
  virtual std::pair<at::Tensor, at::Tensor> increment_and_levy_area(double s, double t) = 0;

  // The same, written into caller-owned tensors shaped `shape()` (reused buffers: no allocation
  // per step). These defaults copy; sources override them to write in place.
  virtual void increment_into(double s, double t, const at::Tensor& W) { W.copy_(increment(s, t)); }
  virtual void increment_and_levy_area_into(double s, double t, const at::Tensor& W, const at::Tensor& H) {
    auto wh = increment_and_levy_area(s, t);
    W.copy_(wh.first);
    H.copy_(wh.second);
  }

  virtual bool has_levy_area() const = 0;
  virtual double t0() const = 0;
  virtual double t1() const = 0;
  virtual const std::vector<int64_t>& shape() const = 0;
  virtual const c10::TensorOptions& options() const = 0;
};

struct BrownianIntervalOptions {
  double t0 = 0.0;
  double t1 = 1.0;
  std::vector<int64_t> shape;
  c10::TensorOptions options;  // dtype and device of the increments
  uint64_t seed = 0;
  // Expected step size of the queries (0: unknown). Lets the tree be pre-split so that
  // queries on a regular grid are found in O(log n) without deep bridge recursion.
  double dt_hint = 0.0;
  bool levy_area = false;   // also sample the space-time Levy area (srk)
  int64_t cache_size = 45;  // LRU entries of (W, H) kept; bounds the tensor memory
};

// torchsde-style Brownian interval: a binary tree of intervals, each node with its own seed;
// a query splits nodes with Brownian bridges (and their Levy-area analogues), and an LRU cache
// keeps recent increments. Properties relied on elsewhere:
//   - W(a,c) == W(a,b) + W(b,c) up to float rounding;
//   - the same instance answers the same query identically, in any order, forever;
//   - two instances with the same options and seed that see the same queries agree;
//   - tensor memory is bounded by the cache, whatever the number of queries.
std::unique_ptr<BrownianMotion> make_brownian_interval(const BrownianIntervalOptions& options);

// A source whose increments and Levy areas are all zero (t0, t1, shape and options from
// `options`; the rest ignored): any solver driven by it solves the SDE's drift alone, the
// zero-noise (deterministic) path, with no further code path.
std::unique_ptr<BrownianMotion> make_zero_brownian(const BrownianIntervalOptions& options);

// A source for fixed-step solves on the grid t0 + k (t1 - t0) / n: `steps` ([n, ...shape], of
// options.options' dtype and device, owned by the caller) holds row k = W(grid[k+1]) - W(grid[k]).
// Drawn at once on the device by the caller (refilled in place before each CUDA-graph replay), it
// costs no host work or memory per step. It answers whole grid steps only, forwards (a view of
// the row) or backwards (through brownian_increment), as a fixed-step solve and an adjoint on the
// same grid ask; any other query is a logic error. No Levy area.
std::unique_ptr<BrownianMotion> make_grid_brownian(const BrownianIntervalOptions& options, const at::Tensor& steps);

// Introspection of a source made by make_brownian_interval, for tests and benchmarks
// (throws invalid_argument for other sources).
struct BrownianIntervalStats {
  int64_t cache_entries;  // (W, H) entries held now, never above cache_size
  int64_t cache_size;
  int64_t nodes;            // tree nodes (bookkeeping only, no tensors)
  int64_t splits_computed;  // child pairs drawn so far (first draws and recomputations)
};
BrownianIntervalStats brownian_interval_stats(const BrownianMotion& bm);

}  // namespace sde
