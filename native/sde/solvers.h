// SDE solvers over a shared stepping loop, in the manner of torchsde: one `sdeint` entry point,
// methods as small step functions, tableaus as data, step doubling for adaptive steps.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "sde/brownian.h"
#include "sde/routes.h"
#include "sde/sde.h"

namespace sde {

enum class Method { Euler, Milstein, Srk, Midpoint, Heun, EulerHeun, ReversibleHeun };
Method parse_method(const std::string& name);
const char* to_string(Method method);

struct StepOptions {
  Method method = Method::Euler;
  double dt = 1e-2;
  bool adaptive = false;
  double rtol = 1e-3;
  double atol = 1e-4;
  double dt_min = 1e-5;
  // Accepted plus rejected steps of one solve (forward, or each backward solve); more is ERR_LIMIT
  // naming max_steps_option, the caller's name for the setting.
  int64_t max_steps = 100000;
  std::string max_steps_option = "maxSteps";
  // Throw ERR_NUMERICAL when a solution is not finite at an output time. The check reads the device
  // (a host round trip on CUDA); a caller that checks its own result (the SDE-BNN's loss and
  // predictions) turns it off.
  bool check_finite = true;
};

struct SolveStats {
  int64_t nfe = 0;  // drift and diffusion evaluations, each counted once
  int64_t steps_accepted = 0;
  int64_t steps_rejected = 0;
  bool hit_dt_min = false;  // an adaptive step was forced at dt_min
};

// Called after each accepted step with the time reached.
using StepProgress = std::function<void(double t, const SolveStats& stats)>;

// What the increment-form solvers (euler, midpoint, heun, euler_heun, reversible_heun) step:
// z(tb) = z(ta) + integral f dt + integral g o dW, in signed time (tb < ta runs backwards, with
// dt = tb - ta and dW = W(tb) - W(ta)). Both increments are linear in (dt, dW).
class System {
 public:
  virtual ~System() = default;
  virtual at::Tensor drift_increment(double t, const at::Tensor& z, double dt) = 0;
  virtual at::Tensor noise_increment(double t, const at::Tensor& z, const at::Tensor& dW) = 0;
  // Both at once; systems that can share work (the adjoint's VJP) override this.
  virtual at::Tensor increment(double t, const at::Tensor& z, double dt, const at::Tensor& dW);
};

// The method-support table: which SDEs each method solves, its strong order, whether it steps
// adaptively, and which adjoints it can solve as an adjointMethod. The one copy: the addon hands
// it to TypeScript (methods()), the checks below read it.
struct MethodInfo {
  Method method;
  std::vector<SdeType> sde_types;
  std::vector<NoiseType> noise_types;
  const char* strong_order;
  bool adaptive;
  std::vector<NoiseType> adjoint_noise_types;  // as adjointMethod, for SDEs with these noise types
  bool adjoint_needs_same_method;              // reversible_heun: only as its own exact adjoint
};
const std::vector<MethodInfo>& method_table();
const MethodInfo& method_info(Method method);

// Throws invalid_argument naming what `method` supports when it cannot solve `sde`.
void check_method(Method method, const SDE& sde);

// Checks output times: at least two, finite, strictly increasing, inside the Brownian motion's span.
void check_times(const std::vector<double>& ts, const BrownianMotion& bm);

// All of the above plus the Brownian motion's shape and Levy area, for a solve of `sde` from y0.
void check_solve(const SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, const BrownianMotion& bm,
                 const StepOptions& options);

struct Solution {
  at::Tensor ys;  // [len(ts), ...y0.shape]
  SolveStats stats;
  at::Tensor final_state;         // the solver's whole state at ts.back() (reversible_heun: [y, y_hat, f])
  Route route = Route::Autograd;  // the route that ran
};

// Solves `sde` from y0 = y(ts[0]) and returns y at every ts, stepping exactly onto each output
// time. Differentiable by autograd when grad mode is on (backprop through the solver); without a
// graph, by the buffered route where select_route picks it.
Solution sdeint(SDE& sde, const at::Tensor& y0, const std::vector<double>& ts, BrownianMotion& bm,
                const StepOptions& options, const StepProgress& progress = {});

// ---- Pieces shared with the adjoint -------------------------------------------------------

// W(tb) - W(ta) in signed time.
at::Tensor brownian_increment(BrownianMotion& bm, double ta, double tb);

// The fixed-step grid on [ta, tb] (ta < tb): ta, ta + dt, ..., tb (the last step clipped, and a
// sliver shorter than 1e-9 dt merged into the step before it).
std::vector<double> fixed_grid(double ta, double tb, double dt);
// Its number of steps, counted without building it (at least 1).
int64_t fixed_steps(double ta, double tb, double dt);

// Throws ERR_LIMIT naming options.max_steps_option when a solve has taken, or a fixed grid would
// take, more than options.max_steps steps (`steps`, counted by the caller). Fixed grids are checked
// before they are built: a tiny dt would otherwise allocate without bound.
void check_step_limit(double steps, const StepOptions& options);

// One evaluation of a step of an increment-form method (euler, midpoint, heun, euler_heun; not
// reversible_heun, whose state is not of this form), as data: evaluation k runs at ta + c dt on
// the point z + sum_j a[j] increment_j (the earlier evaluations'), takes the drift, the noise or
// both, and the step's result is z + sum_k b_k increment_k. The forward solve (increment_step) and
// the adjoint's step (adjoint.cpp, on its parts) run the same table.
struct IncrementStage {
  double c;
  std::vector<double> a;
  bool drift, noise;
  double b;
};
const std::vector<IncrementStage>& increment_stages(Method method);

// One step of an increment-form method from ta to tb with Brownian increment dW.
at::Tensor increment_step(Method method, System& system, double ta, double tb, const at::Tensor& z,
                          const at::Tensor& dW);

using StepFn = std::function<at::Tensor(double ta, double tb, const at::Tensor& z)>;

// Integrates z from ta to tb (either direction) with `step`, fixed or adaptive per `options`.
// `h` carries the adaptive step size from one interval to the next.
at::Tensor integrate_interval(const StepFn& step, at::Tensor z, double ta, double tb, const StepOptions& options,
                              SolveStats& stats, double& h, const StepProgress& progress);

// Reversible Heun keeps (y, y_hat, f(y_hat)) stacked on a leading dimension of 3.
at::Tensor reversible_heun_init(SDE& sde, double t0, const at::Tensor& y0, SolveStats& stats);

}  // namespace sde
