#include "sde/solvers.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "sde/buffered.h"
#include "sde/errors.h"

namespace sde {

// Names and enums: one small table per enum, the same shape as parse_method and the others (by design).
Method parse_method(const std::string& name) {
  if (name == "euler") return Method::Euler;
  if (name == "milstein") return Method::Milstein;
  if (name == "srk") return Method::Srk;
  if (name == "midpoint") return Method::Midpoint;
  if (name == "heun") return Method::Heun;
  if (name == "euler_heun") return Method::EulerHeun;
  if (name == "reversible_heun") return Method::ReversibleHeun;
  throw invalid_argument(
      "Expected 'euler', 'milstein', 'srk', 'midpoint', 'heun', 'euler_heun' or 'reversible_heun' for method but "
      "received '" +
      name + "'");
}

const char* to_string(Method method) {
  switch (method) {
    case Method::Euler: return "euler";
    case Method::Milstein: return "milstein";
    case Method::Srk: return "srk";
    case Method::Midpoint: return "midpoint";
    case Method::Heun: return "heun";
    case Method::EulerHeun: return "euler_heun";
    case Method::ReversibleHeun: return "reversible_heun";
  }
  return "?";
}

const std::vector<MethodInfo>& method_table() {
  const std::vector<NoiseType> all{NoiseType::Diagonal, NoiseType::Additive, NoiseType::Scalar, NoiseType::General};
  const std::vector<NoiseType> no_general{NoiseType::Diagonal, NoiseType::Additive, NoiseType::Scalar};
  const std::vector<SdeType> ito{SdeType::Ito}, strat{SdeType::Stratonovich}, both{SdeType::Ito, SdeType::Stratonovich};
  static const std::vector<MethodInfo> table{
      {Method::Euler, ito, all, "0.5 (1.0 additive)", true, {NoiseType::Additive}, false},
      {Method::Milstein, both, no_general, "1.0", true, {}, false},
      {Method::Srk, ito, no_general, "1.5", true, {}, false},
      {Method::Midpoint, strat, all, "1.0 (0.5 for non-commutative general noise)", true, all, false},
      {Method::Heun, strat, all, "1.0 (0.5 for non-commutative general noise)", true, all, false},
      {Method::EulerHeun, strat, all, "1.0 (0.5 for non-commutative general noise)", true, all, false},
      {Method::ReversibleHeun, strat, all, "0.5 (1.0 additive or commutative)", false, all, true},
  };
  return table;
}

const MethodInfo& method_info(Method method) {
  for (const MethodInfo& m : method_table()) {
    if (m.method == method) return m;
  }
  throw std::logic_error("method_info: a method missing from the table");
}

namespace {

template <typename T>
bool contains(const std::vector<T>& v, T x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

void check_method(Method method, const SDE& sde) {
  const MethodInfo& s = method_info(method);
  if (contains(s.sde_types, sde.sde_type()) && contains(s.noise_types, sde.noise_type())) return;
  std::ostringstream msg;
  msg << "method '" << to_string(method) << "' cannot solve a " << to_string(sde.sde_type()) << " SDE with "
      << to_string(sde.noise_type()) << " noise; it supports sdeType ";
  for (size_t i = 0; i < s.sde_types.size(); ++i) msg << (i ? " or " : "") << "'" << to_string(s.sde_types[i]) << "'";
  msg << " with noiseType ";
  for (size_t i = 0; i < s.noise_types.size(); ++i) msg << (i ? ", " : "") << "'" << to_string(s.noise_types[i]) << "'";
  msg << ". For " << to_string(sde.sde_type()) << " SDEs with " << to_string(sde.noise_type()) << " noise use one of:";
  for (const MethodInfo& o : method_table()) {
    if (contains(o.sde_types, sde.sde_type()) && contains(o.noise_types, sde.noise_type()))
      msg << " '" << to_string(o.method) << "'";
  }
  throw invalid_argument(msg.str());
}

void check_times(const std::vector<double>& ts, const BrownianMotion& bm) {
  if (ts.size() < 2) throw invalid_argument("Expected at least two times in ts");
  for (size_t i = 0; i < ts.size(); ++i) {
    if (!std::isfinite(ts[i]))
      throw invalid_argument("Expected finite numbers in ts but ts[" + std::to_string(i) + "] is not");
    if (i > 0 && !(ts[i] > ts[i - 1]))
      throw invalid_argument("Expected strictly increasing ts but ts[" + std::to_string(i) + "] <= ts[" +
                             std::to_string(i - 1) + "]");
  }
  const double tol = 1e-12 * std::max(1.0, std::abs(bm.t1() - bm.t0()));
  if (ts.front() < bm.t0() - tol || ts.back() > bm.t1() + tol) {
    std::ostringstream msg;
    msg << "ts spans [" << ts.front() << ", " << ts.back() << "] but the Brownian motion covers [" << bm.t0() << ", "
        << bm.t1() << "]";
    throw invalid_argument(msg.str());
  }
}

at::Tensor System::increment(double t, const at::Tensor& z, double dt, const at::Tensor& dW) {
  return drift_increment(t, z, dt) + noise_increment(t, z, dW);
}

at::Tensor brownian_increment(BrownianMotion& bm, double ta, double tb) {
  return ta <= tb ? bm.increment(ta, tb) : -bm.increment(tb, ta);
}

int64_t fixed_steps(double ta, double tb, double dt) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil((tb - ta) / dt - 1e-9)));
}

std::vector<double> fixed_grid(double ta, double tb, double dt) {
  std::vector<double> grid{ta};
  const int64_t n = fixed_steps(ta, tb, dt);
  for (int64_t i = 1; i < n; ++i) grid.push_back(ta + static_cast<double>(i) * dt);
  grid.push_back(tb);
  return grid;
}

const std::vector<IncrementStage>& increment_stages(Method method) {
  static const std::vector<IncrementStage> euler{{0.0, {}, true, true, 1.0}};
  static const std::vector<IncrementStage> midpoint{{0.0, {}, true, true, 0.0}, {0.5, {0.5}, true, true, 1.0}};
  static const std::vector<IncrementStage> heun{{0.0, {}, true, true, 0.5}, {1.0, {1.0}, true, true, 0.5}};
  // drift at z, noise at z, noise at z + that noise increment
  static const std::vector<IncrementStage> euler_heun{
      {0.0, {}, true, false, 1.0}, {0.0, {}, false, true, 0.5}, {0.0, {0.0, 1.0}, false, true, 0.5}};
  switch (method) {
    case Method::Euler: return euler;
    case Method::Midpoint: return midpoint;
    case Method::Heun: return heun;
    case Method::EulerHeun: return euler_heun;
    default: break;
  }
  throw invalid_argument(std::string("method '") + to_string(method) + "' is not an increment-form method");
}

at::Tensor increment_step(Method method, System& system, double ta, double tb, const at::Tensor& z,
                          const at::Tensor& dW) {
  const double dt = tb - ta;
  if (method == Method::ReversibleHeun) {
    // z = [y, y_hat, f(y_hat)] stacked; Kidger et al. (2021), algebraically reversible.
    at::Tensor y = z[0], y_hat = z[1], f0 = z[2];
    at::Tensor g0 = system.noise_increment(ta, y_hat, dW);
    at::Tensor y_hat1 = 2 * y - y_hat + f0 * dt + g0;
    at::Tensor f1 = system.drift_increment(tb, y_hat1, 1.0);
    at::Tensor g1 = system.noise_increment(tb, y_hat1, dW);
    at::Tensor y1 = y + 0.5 * (f0 + f1) * dt + 0.5 * (g0 + g1);
    return at::stack({y1, y_hat1, f1});
  }
  const std::vector<IncrementStage>& stages = increment_stages(method);
  std::vector<at::Tensor> k;
  at::Tensor out = z;
  for (const IncrementStage& stage : stages) {
    at::Tensor point = z;
    for (size_t j = 0; j < stage.a.size(); ++j) {
      if (stage.a[j] != 0.0) point = at::add(point, k[j], stage.a[j]);
    }
    const double t = ta + stage.c * dt;
    k.push_back(stage.drift && stage.noise ? system.increment(t, point, dt, dW)
                : stage.drift              ? system.drift_increment(t, point, dt)
                                           : system.noise_increment(t, point, dW));
    if (stage.b != 0.0) out = at::add(out, k.back(), stage.b);
  }
  return out;
}

namespace {

// The forward SDE as a System, counting evaluations.
class SdeSystem : public System {
 public:
  SdeSystem(SDE& sde, SolveStats& stats) : sde_(sde), stats_(stats) {}
  at::Tensor drift_increment(double t, const at::Tensor& z, double dt) override {
    ++stats_.nfe;
    return sde_.drift(t, z) * dt;
  }
  at::Tensor noise_increment(double t, const at::Tensor& z, const at::Tensor& dW) override {
    ++stats_.nfe;
    return sde_.diffusion_prod(t, z, dW);
  }
  at::Tensor increment(double t, const at::Tensor& z, double dt, const at::Tensor& dW) override {
    stats_.nfe += 2;
    return sde_.increment(t, z, dt, dW);
  }

 private:
  SDE& sde_;
  SolveStats& stats_;
};

// Milstein: y + f dt + g dW + 1/2 (g dg/dy) v, v = dW^2 - dt (Ito) or dW^2 (Stratonovich).
at::Tensor milstein_step(SDE& sde, SolveStats& stats, double ta, double tb, const at::Tensor& y, const at::Tensor& dW) {
  const double dt = tb - ta;
  at::Tensor v = sde.sde_type() == SdeType::Ito ? dW * dW - dt : dW * dW;
  stats.nfe += 3;
  return y + sde.drift(ta, y) * dt + sde.diffusion_prod(ta, y, dW) + sde.gdg_prod(ta, y, 0.5 * v);
}

// Roessler (2010) stochastic Runge-Kutta tableaus, strong order 1.5 (as in torchsde).
struct Sra1 {  // additive noise
  static constexpr int stages = 2;
  static constexpr double C0[2] = {0, 0.75}, C1[2] = {1, 0};
  static constexpr double A0[2][2] = {{0, 0}, {0.75, 0}}, B0[2][2] = {{0, 0}, {1.5, 0}};
  static constexpr double alpha[2] = {1.0 / 3, 2.0 / 3}, beta1[2] = {1, 0}, beta2[2] = {-1, 1};
};
struct Srid2 {  // diagonal / scalar noise
  static constexpr int stages = 4;
  static constexpr double C0[4] = {0, 1, 0.5, 0}, C1[4] = {0, 0.25, 1, 0.25};
  static constexpr double A0[4][4] = {{0, 0, 0, 0}, {1, 0, 0, 0}, {0.25, 0.25, 0, 0}, {0, 0, 0, 0}};
  static constexpr double A1[4][4] = {{0, 0, 0, 0}, {0.25, 0, 0, 0}, {1, 0, 0, 0}, {0, 0, 0.25, 0}};
  static constexpr double B0[4][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0.5, 0, 0}, {0, 0, 0, 0}};
  static constexpr double B1[4][4] = {{0, 0, 0, 0}, {-0.5, 0, 0, 0}, {1, 0, 0, 0}, {2, -1, 0.5, 0}};
  static constexpr double alpha[4] = {1.0 / 6, 1.0 / 6, 2.0 / 3, 0};
  static constexpr double beta1[4] = {-1, 4.0 / 3, 2.0 / 3, 0}, beta2[4] = {1, -4.0 / 3, 1.0 / 3, 0};
  static constexpr double beta3[4] = {2, -4.0 / 3, -2.0 / 3, 0}, beta4[4] = {-2, 5.0 / 3, -2.0 / 3, 1};
};

at::Tensor diagonal_g(SDE& sde, double t, const at::Tensor& y) {
  at::Tensor g = sde.diffusion(t, y);
  return g.dim() == 3 ? g.squeeze(-1) : g;
}

at::Tensor srk_step(SDE& sde, SolveStats& stats, BrownianMotion& bm, double ta, double tb, const at::Tensor& y0) {
  if (!(tb > ta)) throw invalid_argument("srk steps forward in time only");
  const double dt = tb - ta, rdt = 1.0 / dt, sqrt_dt = std::sqrt(dt);
  auto [I_k, H] = bm.increment_and_levy_area(ta, tb);
  at::Tensor I_k0 = dt * (H + 0.5 * I_k);  // integral of (W(r) - W(ta)) dr
  at::Tensor y1 = y0;
  if (sde.noise_type() == NoiseType::Additive) {
    using T = Sra1;
    std::vector<at::Tensor> H0;
    for (int i = 0; i < T::stages; ++i) {
      at::Tensor H0i = y0;
      for (int j = 0; j < i; ++j) {
        H0i = H0i + T::A0[i][j] * sde.drift(ta + T::C0[j] * dt, H0[j]) * dt +
              sde.diffusion_prod(ta + T::C1[j] * dt, y0, T::B0[i][j] * I_k0 * rdt);
        stats.nfe += 2;
      }
      H0.push_back(H0i);
      y1 = y1 + T::alpha[i] * sde.drift(ta + T::C0[i] * dt, H0i) * dt +
           sde.diffusion_prod(ta + T::C1[i] * dt, y0, T::beta1[i] * I_k + T::beta2[i] * I_k0 * rdt);
      stats.nfe += 2;
    }
    return y1;
  }
  using T = Srid2;
  at::Tensor I_kk = 0.5 * (I_k * I_k - dt);
  at::Tensor I_kkk = (I_k * I_k * I_k - 3 * dt * I_k) / 6.0;
  std::vector<at::Tensor> H0, H1, F, G;  // stage values and their drift / diffusion, reused
  for (int s = 0; s < T::stages; ++s) {
    at::Tensor H0s = y0, H1s = y0;
    for (int j = 0; j < s; ++j) {
      H0s = H0s + T::A0[s][j] * F[j] * dt + T::B0[s][j] * G[j] * I_k0 * rdt;
      H1s = H1s + T::A1[s][j] * F[j] * dt + T::B1[s][j] * G[j] * sqrt_dt;
    }
    H0.push_back(H0s);
    H1.push_back(H1s);
    F.push_back(sde.drift(ta + T::C0[s] * dt, H0s));
    G.push_back(diagonal_g(sde, ta + T::C1[s] * dt, H1s));
    stats.nfe += 2;
    at::Tensor weight =
        T::beta1[s] * I_k + T::beta2[s] * I_kk / sqrt_dt + T::beta3[s] * I_k0 * rdt + T::beta4[s] * I_kkk * rdt;
    y1 = y1 + T::alpha[s] * F[s] * dt + G[s] * weight;
  }
  return y1;
}

double rms_error(const at::Tensor& full, const at::Tensor& half, double rtol, double atol) {
  at::Tensor tol = (rtol * at::maximum(full.abs(), half.abs()) + atol).clamp_min(1e-7);
  at::Tensor ratio = (full - half) / tol;
  return std::sqrt(ratio.pow(2).mean().item<double>());
}

}  // namespace

at::Tensor reversible_heun_init(SDE& sde, double t0, const at::Tensor& y0, SolveStats& stats) {
  ++stats.nfe;
  return at::stack({y0, y0, sde.drift(t0, y0)});
}

void check_step_limit(double steps, const StepOptions& options) {
  if (steps <= static_cast<double>(options.max_steps)) return;
  throw limit_exceeded(options.max_steps_option,
                       "the solve needs more than " + options.max_steps_option + " (" +
                           std::to_string(options.max_steps) +
                           ") steps; use a larger dt (adaptive: looser rtol/atol or a larger dtMin), or raise " +
                           options.max_steps_option);
}

at::Tensor integrate_interval(const StepFn& step, at::Tensor z, double ta, double tb, const StepOptions& options,
                              SolveStats& stats, double& h, const StepProgress& progress) {
  if (!options.adaptive) {
    const double lo = std::min(ta, tb), hi = std::max(ta, tb);
    check_step_limit(static_cast<double>(stats.steps_accepted + fixed_steps(lo, hi, options.dt)), options);
    std::vector<double> grid = fixed_grid(lo, hi, options.dt);
    if (tb < ta) std::reverse(grid.begin(), grid.end());
    for (size_t i = 0; i + 1 < grid.size(); ++i) {
      z = step(grid[i], grid[i + 1], z);
      ++stats.steps_accepted;
      if (progress) progress(grid[i + 1], stats);
    }
    return z;
  }
  // Step doubling: one full step against two half steps, a PI controller on the error.
  const double direction = tb > ta ? 1.0 : -1.0;
  double t = ta;
  double prev_error_ratio = -1.0;
  while (direction * (tb - t) > 0) {
    check_step_limit(static_cast<double>(stats.steps_accepted + stats.steps_rejected + 1), options);
    double next = t + direction * h;
    if (direction * (next - tb) >= -1e-9 * h) next = tb;
    const double mid = 0.5 * (t + next);
    at::Tensor full = step(t, next, z);
    at::Tensor half = step(mid, next, step(t, mid, z));
    const double error = rms_error(full, half, options.rtol, options.atol);
    if (!std::isfinite(error)) {
      throw EngineError("ERR_NUMERICAL", "adaptive step error estimate is not finite at t=" + std::to_string(t) +
                                             "; loosen rtol/atol or regularise the dynamics");
    }
    const double error_ratio = 0.9 / std::max(error, 1e-10);
    const bool accept = error <= 1.0;
    const double p = accept ? 0.13 : 0.0, i = accept ? 1.0 / 4.5 : 1.0 / 1.5;
    const double previous = prev_error_ratio > 0 ? prev_error_ratio : error_ratio;
    double factor = std::pow(error_ratio, i) * std::pow(error_ratio / previous, p);
    factor = std::min(1.4, std::max(accept ? 1.0 : 0.2, factor));
    if (accept) prev_error_ratio = error_ratio;
    double new_h = h * factor;
    bool forced = false;
    if (new_h < options.dt_min) {
      new_h = options.dt_min;
      prev_error_ratio = -1.0;
      forced = true;
      stats.hit_dt_min = true;
    }
    if (accept || forced || std::abs(next - t) <= options.dt_min) {
      t = next;
      z = half;
      ++stats.steps_accepted;
      if (progress) progress(t, stats);
    } else {
      ++stats.steps_rejected;
    }
    h = new_h;
  }
  return z;
}

void check_solve(const SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, const BrownianMotion& bm,
                 const StepOptions& options) {
  sde.check_state(y0);
  check_method(options.method, sde);
  check_times(ts, bm);
  if (!(options.dt > 0)) throw invalid_argument("Expected positive number for dt");
  if (options.adaptive && !method_info(options.method).adaptive) {
    throw invalid_argument(std::string(to_string(options.method)) +
                           " takes fixed steps only; set adaptive to false or choose another method");
  }
  if (bm.shape() != sde.brownian_shape(y0)) {
    throw invalid_argument("the Brownian motion's shape does not match the SDE's noise for this y0");
  }
  if (options.method == Method::Srk && !bm.has_levy_area()) {
    throw invalid_argument("method 'srk' needs a Brownian motion with the space-time Levy area (levyArea: true)");
  }
}

Solution sdeint(SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, BrownianMotion& bm,
                const StepOptions& options, const StepProgress& progress) {
  check_solve(sde, y0, ts, bm, options);
  // a graph asked for (backprop through the solver) needs the general solver
  const Route route =
      at::GradMode::is_enabled() && y0.requires_grad()
          ? select_route({sde.route_offer().kernels, sde.route_offer().hand_written, false}, sde.noise_type(),
                         Purpose::Solve, options, options, y0.device(), y0.scalar_type())
          : select_route(sde.route_offer(), sde.noise_type(), Purpose::Solve, options, options, y0.device(),
                         y0.scalar_type());
  if (route == Route::Buffered) {
    const std::unique_ptr<BufferedSolve> solve =
        sde.buffered_solve(y0, bm, BufferedMode::Forward, ts, options, options);
    std::vector<int64_t> shape{static_cast<int64_t>(ts.size())};
    for (int64_t s : y0.sizes()) shape.push_back(s);
    Solution solution;
    solution.ys = solve->solve(y0, progress).view(shape);
    solution.stats = solve->forward_stats;
    solution.final_state = solution.ys[static_cast<int64_t>(ts.size()) - 1];
    solution.route = route;
    return solution;
  }

  Solution solution;
  solution.route = route;
  SolveStats& stats = solution.stats;
  SdeSystem system(sde, stats);
  StepFn step;
  switch (options.method) {
    case Method::Milstein:
      step = [&](double ta, double tb, const at::Tensor& y) {
        return milstein_step(sde, stats, ta, tb, y, brownian_increment(bm, ta, tb));
      };
      break;
    case Method::Srk:
      step = [&](double ta, double tb, const at::Tensor& y) { return srk_step(sde, stats, bm, ta, tb, y); };
      break;
    default:
      step = [&](double ta, double tb, const at::Tensor& z) {
        return increment_step(options.method, system, ta, tb, z, brownian_increment(bm, ta, tb));
      };
  }

  const bool reversible = options.method == Method::ReversibleHeun;
  at::Tensor z = reversible ? reversible_heun_init(sde, ts[0], y0, stats) : y0;
  std::vector<at::Tensor> ys{y0};
  double h = options.dt;
  for (size_t k = 1; k < ts.size(); ++k) {
    z = integrate_interval(step, z, ts[k - 1], ts[k], options, stats, h, progress);
    at::Tensor y = reversible ? z[0] : z;
    if (options.check_finite && !at::isfinite(y).all().item<bool>()) {
      throw EngineError("ERR_NUMERICAL", "the solution became non-finite by t=" + std::to_string(ts[k]) +
                                             "; reduce dt, use adaptive steps or regularise the dynamics");
    }
    ys.push_back(y);
  }
  solution.ys = at::stack(ys);
  solution.final_state = z;
  return solution;
}

}  // namespace sde
