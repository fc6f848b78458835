// SDE definitions. States are tensors of shape [batch, d]; the Brownian motion has shape
// [batch, m] with m = d (diagonal, additive), 1 (scalar) or the SDE's own m (general).
// Specialised SDEs (the SDE-BNN) may use other state shapes as long as they override
// brownian_shape and only run with the increment-form solvers.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sde {

class BrownianMotion;
class BufferedSolve;
enum class BufferedMode;
struct RouteOffer;
struct StepOptions;

enum class NoiseType { Diagonal, Additive, Scalar, General };
enum class SdeType { Ito, Stratonovich };

const char* to_string(NoiseType noise);
const char* to_string(SdeType type);
NoiseType parse_noise_type(const std::string& name);
SdeType parse_sde_type(const std::string& name);

class SDE {
 public:
  SDE(NoiseType noise, SdeType type) : noise_(noise), type_(type) {}
  virtual ~SDE() = default;

  NoiseType noise_type() const { return noise_; }
  SdeType sde_type() const { return type_; }

  // f(t, y), shaped like y.
  virtual at::Tensor drift(double t, const at::Tensor& y) = 0;

  // g(t, y): diagonal/additive [B, d]; scalar [B, d, 1]; general [B, d, m].
  virtual at::Tensor diffusion(double t, const at::Tensor& y) = 0;

  // g(t, y) dW for an increment dW shaped like the Brownian motion; shaped like y.
  virtual at::Tensor diffusion_prod(double t, const at::Tensor& y, const at::Tensor& dW);

  // The Milstein term: sum_j (d g / d y) g_j v_j, i.e. for diagonal noise g * dg/dy * v
  // elementwise (g_i depending on y_i only, as Milstein and SRK assume), for scalar noise
  // (J_g g) v. Default by autograd; analytic problems override it.
  virtual at::Tensor gdg_prod(double t, const at::Tensor& y, const at::Tensor& v);

  // Ito-to-Stratonovich drift correction -1/2 sum_i (d s_i / d y) s_i (s_i the i-th noise column),
  // so that an Ito SDE is the Stratonovich SDE with drift f + correction. Differentiable.
  virtual at::Tensor ito_correction(double t, const at::Tensor& y);

  // One step's increment f dt + g dW (the drift as defined, no Ito correction). Differentiable;
  // SDEs with hand-written derivatives override it with a single autograd node.
  virtual at::Tensor increment(double t, const at::Tensor& y, double dt, const at::Tensor& dW);

  // What the adjoint needs from evaluations of F = f_S dt + g dW at one point (t, y), with f_S
  // the Stratonovich drift (for Ito SDEs, drift + ito_correction): for each term k (its own dt
  // and dW; without dt the drift part is left out, with an undefined dW the noise part), F_k; and
  // the vector-Jacobian products summed over the terms, sum_k a_k . dF_k/dy and, with
  // with_params, sum_k a_k . dF_k/dtheta (one per parameters(), undefined where zero), all
  // without a graph. Several terms share one evaluation of the drift and one VJP through it.
  // Default by autograd; SDEs with hand-written derivatives override it.
  struct VjpTerm {
    std::optional<double> dt;
    at::Tensor dW;
    at::Tensor a;
  };
  struct Vjp {
    std::vector<at::Tensor> F;  // one per term
    at::Tensor grad_y;
    std::vector<at::Tensor> grad_params;  // empty without with_params
  };
  virtual Vjp stratonovich_vjp(double t, const at::Tensor& y, const std::vector<VjpTerm>& terms, bool with_params);

  // Shape of the Brownian motion driving a state y0.
  virtual std::vector<int64_t> brownian_shape(const at::Tensor& y0) const;

  // Learnable parameters (leaf tensors). Gradients are taken with respect to these.
  virtual std::vector<at::Tensor> parameters() const { return {}; }

  // Checks that y0 suits this SDE (dimensions, dtype); throws invalid_argument otherwise.
  virtual void check_state(const at::Tensor& y0) const;

  // The routes this SDE offers (routes.h); by default autograd only.
  virtual RouteOffer route_offer() const;
  // The buffered route's solve from y0 through ts (buffered.h), where route_offer() has one.
  virtual std::unique_ptr<BufferedSolve> buffered_solve(const at::Tensor& y0, BrownianMotion& bm, BufferedMode mode,
                                                        const std::vector<double>& ts, const StepOptions& options,
                                                        const StepOptions& adjoint_options);

 private:
  NoiseType noise_;
  SdeType type_;
};

}  // namespace sde
