// The engine (native/sde) tested without Node: built by CMake with SDEBNN_BUILD_TESTS=ON and run
// by CTest, one case per test (`sdebnn_engine_tests <case>`). Fixed seeds; tolerances stated.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sde/adjoint.h"
#include "sde/brownian.h"
#include "sde/errors.h"
#include "sde/neural.h"
#include "sde/problems.h"
#include "sde/solvers.h"

int softplus_check();  // softplus_check.cpp

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

const auto f64 = at::TensorOptions().dtype(at::kDouble);

std::unique_ptr<sde::BrownianMotion> brownian(std::vector<int64_t> shape, uint64_t seed, double dt_hint = 0) {
  sde::BrownianIntervalOptions o;
  o.shape = std::move(shape);
  o.options = f64;
  o.seed = seed;
  o.dt_hint = dt_hint;
  return sde::make_brownian_interval(o);
}

std::string sci(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

double relative_error(const at::Tensor& a, const at::Tensor& b) { return ((a - b).norm() / b.norm()).item<double>(); }

// All gradients of a result, flat, in one tensor.
at::Tensor flat(const sde::GradientResult& r) {
  std::vector<at::Tensor> parts{r.grad_y0.reshape({-1})};
  for (const at::Tensor& g : r.grad_params) parts.push_back(g.reshape({-1}));
  return at::cat(parts);
}

// Euler-Maruyama on geometric Brownian motion against the exact solution on the same paths: the
// strong error E|Y_1 - exact| falls as dt^(1/2) (slope of log error on log dt within [0.35, 0.7]).
void euler_order() {
  const int64_t paths = 2000;
  sde::GeometricBrownianMotion gbm(at::full({1}, 0.5, f64), at::full({1}, 0.8, f64), sde::NoiseType::Diagonal,
                                   sde::SdeType::Ito);
  const at::Tensor y0 = at::ones({paths, 1}, f64);
  const auto bm = brownian({paths, 1}, 7);
  const at::Tensor exact = gbm.exact(y0, 1.0, bm->increment(0.0, 1.0));
  std::vector<double> log_dt, log_err;
  at::NoGradGuard no_grad;
  for (int k = 4; k <= 9; ++k) {
    sde::StepOptions o;
    o.dt = std::ldexp(1.0, -k);
    const sde::Solution s = sde::sdeint(gbm, y0, {0.0, 1.0}, *bm, o);
    log_dt.push_back(std::log(o.dt));
    log_err.push_back(std::log((s.ys[1] - exact).abs().mean().item<double>()));
  }
  double mx = 0, my = 0, sxy = 0, sxx = 0;
  for (size_t i = 0; i < log_dt.size(); ++i) mx += log_dt[i] / log_dt.size(), my += log_err[i] / log_dt.size();
  for (size_t i = 0; i < log_dt.size(); ++i)
    sxy += (log_dt[i] - mx) * (log_err[i] - my), sxx += (log_dt[i] - mx) * (log_dt[i] - mx);
  const double slope = sxy / sxx;
  expect(slope > 0.35 && slope < 0.7, "euler on GBM: strong order " + sci(slope) + " in [0.35, 0.7]");
}

// Increments add up (to double rounding), repeat exactly, and have variance t - s.
void brownian_additivity() {
  const auto bm = brownian({4000}, 11);
  const at::Tensor whole = bm->increment(0.2, 0.9);
  const at::Tensor parts = bm->increment(0.2, 0.45) + bm->increment(0.45, 0.6) + bm->increment(0.6, 0.9);
  expect((whole - parts).abs().max().item<double>() < 1e-12, "W(0.2, 0.9) = W(0.2, 0.45) + W(0.45, 0.6) + W(0.6, 0.9)");
  expect(at::equal(bm->increment(0.3, 0.7), bm->increment(0.3, 0.7)), "a repeated query gives the same bits");
  // variance of 4000 standard normals: within 5 standard errors (sqrt(2 / 4000))
  const double var = (bm->increment(0.1, 0.35).var().item<double>()) / 0.25;
  expect(std::abs(var - 1) < 5 * std::sqrt(2.0 / 4000), "Var W(0.1, 0.35) = 0.25 (ratio " + sci(var) + ")");
}

std::shared_ptr<sde::NeuralSDE> neural(sde::Kernels kernels, bool additive, sde::SdeType type) {
  sde::NeuralSdeSpec spec;
  spec.d = 3;
  spec.noise = additive ? sde::NoiseType::Additive : sde::NoiseType::Diagonal;
  spec.type = type;
  spec.drift.hidden = {16};
  spec.drift.activation = sde::Activation::Tanh;
  spec.drift.time_input = true;
  spec.diffusion_kind = additive ? sde::DiffusionKind::Constant : sde::DiffusionKind::ScaledTanh;
  spec.diffusion_offset = 0.1;
  spec.diffusion_init = 0.3;
  spec.kernels = kernels;
  spec.dtype = at::kDouble;
  spec.seed = 3;
  return std::make_shared<sde::NeuralSDE>(spec);
}

// The stochastic adjoint against backprop on the same path (midpoint, 200 steps): within 1e-3.
void adjoint_vs_backprop() {
  const auto sde = neural(sde::Kernels::Autograd, false, sde::SdeType::Stratonovich);
  const at::Tensor y0 = at::rand({8, 3}, f64) - 0.5;
  const at::Tensor g = at::randn({3, 8, 3}, f64);
  const std::vector<double> ts{0.0, 0.5, 1.0};
  const auto bm = brownian({8, 3}, 5);
  sde::StepOptions o;
  o.method = sde::Method::Midpoint;
  o.dt = 1.0 / 200;
  const sde::GradientResult bp = sde::backprop_gradients(*sde, y0, ts, *bm, o, g);
  const sde::GradientResult adj = sde::adjoint_gradients(*sde, y0, ts, *bm, o, o, g);
  const double e = relative_error(flat(adj), flat(bp));
  expect(e < 1e-3, "midpoint adjoint vs backprop: relative error " + sci(e) + " < 1e-3");
}

// The grid source (make_grid_brownian, what CUDA graphs read): a grid step is its row, a step
// backwards its row negated, any other interval a logic error; on it the stochastic adjoint agrees
// with backprop as on the Brownian interval (midpoint, 200 steps, output at 0.5: within 1e-3).
void grid_brownian() {
  at::manual_seed(2);
  const int64_t n = 200;
  sde::BrownianIntervalOptions bo;
  bo.shape = {8, 3};
  bo.options = f64;
  const at::Tensor rows = at::randn({n, 8, 3}, f64) * std::sqrt(1.0 / n);
  const auto bm = sde::make_grid_brownian(bo, rows);
  const std::vector<double> grid = sde::fixed_grid(0.0, 1.0, 1.0 / n);
  expect(at::equal(bm->increment(grid[7], grid[8]), rows[7]), "a grid step is its row");
  expect(at::equal(sde::brownian_increment(*bm, grid[8], grid[7]), -rows[7]), "a step backwards is its row negated");
  bool threw = false;
  try {
    bm->increment(0.1001, 0.3);
  } catch (const std::logic_error&) {
    threw = true;
  }
  expect(threw, "an interval off the grid is a logic error");
  const auto sde = neural(sde::Kernels::Autograd, false, sde::SdeType::Stratonovich);
  const at::Tensor y0 = at::rand({8, 3}, f64) - 0.5;
  const at::Tensor g = at::randn({3, 8, 3}, f64);
  sde::StepOptions o;
  o.method = sde::Method::Midpoint;
  o.dt = 1.0 / static_cast<double>(n);
  const sde::GradientResult bp = sde::backprop_gradients(*sde, y0, {0.0, 0.5, 1.0}, *bm, o, g);
  const sde::GradientResult adj = sde::adjoint_gradients(*sde, y0, {0.0, 0.5, 1.0}, *bm, o, o, g);
  const double e = relative_error(flat(adj), flat(bp));
  expect(e < 1e-3, "midpoint adjoint vs backprop on the grid: relative error " + sci(e) + " < 1e-3");
}

// The buffered solver against the general solver on autograd: Euler backprop (diagonal scaled-tanh
// noise) and the Euler adjoint (additive noise), equal to round-off in float64 (1e-10).
void buffered_vs_engine() {
  at::manual_seed(1);
  const at::Tensor y0 = at::rand({8, 3}, f64) - 0.5;
  const at::Tensor g = at::randn({3, 8, 3}, f64);
  const std::vector<double> ts{0.0, 0.5, 1.0};
  sde::StepOptions o;
  o.method = sde::Method::Euler;
  o.dt = 1.0 / 40;
  for (const bool additive : {false, true}) {
    for (const bool adjoint : {false, true}) {
      if (adjoint && !additive) continue;  // an Euler adjoint needs additive noise
      sde::GradientResult r[2];
      for (int i = 0; i < 2; ++i) {
        const auto sde = neural(i == 0 ? sde::Kernels::Fast : sde::Kernels::Autograd, additive, sde::SdeType::Ito);
        const auto bm = brownian({8, 3}, 9);
        r[i] = adjoint ? sde::adjoint_gradients(*sde, y0, ts, *bm, o, o, g)
                       : sde::backprop_gradients(*sde, y0, ts, *bm, o, g);
      }
      const std::string what =
          std::string(additive ? "additive" : "diagonal") + (adjoint ? " euler adjoint" : " euler backprop");
      expect(r[0].route == sde::Route::Buffered && r[1].route == sde::Route::Autograd,
             what + ": routes buffered and autograd");
      const double ey = relative_error(r[0].ys, r[1].ys), eg = relative_error(flat(r[0]), flat(r[1]));
      expect(ey < 1e-10 && eg < 1e-10, what + ": ys " + sci(ey) + ", gradients " + sci(eg) + " < 1e-10");
    }
  }
}

// max_steps on both solvers, before any grid is built: 40 fixed steps pass a limit of 40 and are
// ERR_LIMIT naming max_steps_option under 39; the adjoint's backward pass counts against its own.
void step_limit() {
  const at::Tensor y0 = at::full({8, 3}, 0.1, f64);
  const at::Tensor g = at::ones({3, 8, 3}, f64);
  const std::vector<double> ts{0.0, 0.5, 1.0};
  const auto limited = [](const std::function<void()>& solve) {
    try {
      solve();
    } catch (const sde::EngineError& e) {
      return e.code() == "ERR_LIMIT" && e.option() == "options.maxSteps";
    }
    return false;
  };
  for (const auto kernels : {sde::Kernels::Fast, sde::Kernels::Autograd}) {
    const auto sde = neural(kernels, true, sde::SdeType::Ito);
    const auto bm = brownian({8, 3}, 9);
    sde::StepOptions ok;
    ok.dt = 1.0 / 40;
    ok.max_steps = 40;
    ok.max_steps_option = "options.maxSteps";
    sde::StepOptions under = ok;
    under.max_steps = 39;
    const std::string what = kernels == sde::Kernels::Fast ? "buffered" : "general";
    const sde::Solution s = sde::sdeint(*sde, y0, ts, *bm, ok);
    expect(s.stats.steps_accepted == 40 &&
               s.route == (kernels == sde::Kernels::Fast ? sde::Route::Buffered : sde::Route::Autograd),
           what + ": 40 steps within max_steps 40");
    expect(limited([&] { sde::sdeint(*sde, y0, ts, *bm, under); }), what + ": sdeint over max_steps 39 is ERR_LIMIT");
    expect(limited([&] { sde::backprop_gradients(*sde, y0, ts, *bm, under, g); }),
           what + ": backprop over max_steps 39 is ERR_LIMIT");
    expect(limited([&] { sde::adjoint_gradients(*sde, y0, ts, *bm, ok, under, g); }),
           what + ": an adjoint backward pass over its max_steps 39 is ERR_LIMIT");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::map<std::string, std::function<void()>> cases{
      {"euler_order", euler_order},
      {"brownian_additivity", brownian_additivity},
      {"adjoint_vs_backprop", adjoint_vs_backprop},
      {"buffered_vs_engine", buffered_vs_engine},
      {"grid_brownian", grid_brownian},
      {"step_limit", step_limit},
      {"softplus", [] { expect(softplus_check() == 0, "softplus against long-double log1p(exp) and sigmoid"); }},
  };
  if (argc != 2 || !cases.count(argv[1])) {
    std::fprintf(stderr, "usage: sdebnn_engine_tests <case>; cases:");
    for (const auto& [name, fn] : cases) std::fprintf(stderr, " %s", name.c_str());
    std::fprintf(stderr, "\n");
    return 2;
  }
  try {
    cases.at(argv[1])();
  } catch (const std::exception& e) {
    expect(false, std::string("threw: ") + e.what());
  }
  return failures == 0 ? 0 : 1;
}
