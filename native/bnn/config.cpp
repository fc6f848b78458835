#include "bnn/config.h"

#include "sde/errors.h"

namespace bnn {

// Names and enums: one small table per enum, the same shape as parse_method and the others (by design).
Kind parse_kind(const std::string& name) {
  if (name == "mlp") return Kind::Mlp;
  if (name == "conv") return Kind::Conv;
  throw sde::invalid_argument("Expected 'mlp' or 'conv' for config.kind but received '" + name + "'");
}
Model parse_model(const std::string& name) {
  if (name == "sdebnn") return Model::SdeBnn;
  if (name == "odenet") return Model::OdeNet;
  if (name == "resnet") return Model::ResNet;
  if (name == "mfvi-resnet") return Model::MfviResNet;
  if (name == "mfvi-odenet") return Model::MfviOdeNet;
  throw sde::invalid_argument(
      "Expected 'sdebnn', 'odenet', 'resnet', 'mfvi-resnet' or 'mfvi-odenet' for config.model but received '" + name +
      "'");
}
bool has_weight_sde(Model m) { return m == Model::SdeBnn; }
bool is_resnet(Model m) { return m == Model::ResNet || m == Model::MfviResNet; }
Estimator parse_estimator(const std::string& name) {
  if (name == "ckl") return Estimator::Ckl;
  if (name == "fmc") return Estimator::Fmc;
  if (name == "stl") return Estimator::Stl;
  throw sde::invalid_argument("Expected 'ckl', 'fmc' or 'stl' for config.estimator but received '" + name + "'");
}
Likelihood parse_likelihood(const std::string& name) {
  if (name == "categorical") return Likelihood::Categorical;
  if (name == "gaussian") return Likelihood::Gaussian;
  if (name == "laplace") return Likelihood::Laplace;
  throw sde::invalid_argument("Expected 'categorical', 'gaussian' or 'laplace' for config.likelihood but received '" +
                              name + "'");
}
GradientRoute parse_gradient_route(const std::string& name) {
  if (name == "backprop") return GradientRoute::Backprop;
  if (name == "adjoint") return GradientRoute::Adjoint;
  throw sde::invalid_argument("Expected 'backprop' or 'adjoint' for config.solver.gradient but received '" + name +
                              "'");
}
W0Init parse_w0_init(const std::string& name) {
  if (name == "normal") return W0Init::Normal;
  if (name == "fanIn") return W0Init::FanIn;
  throw sde::invalid_argument("Expected 'normal' or 'fanIn' for config.w0.init but received '" + name + "'");
}
int64_t static_layers(const BnnConfig& c) { return is_resnet(c.model) ? c.solver.steps : 1; }
const char* to_string(Estimator e) {
  switch (e) {
    case Estimator::Ckl: return "ckl";
    case Estimator::Fmc: return "fmc";
    case Estimator::Stl: return "stl";
  }
  return "?";
}

}  // namespace bnn
