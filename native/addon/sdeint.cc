// SDE objects (analytic problems and neural SDEs), sdeint and its gradients. Marshalling only:
// the TS layer has validated every field.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <atomic>
#include <cctype>
#include <memory>

#include "brownian.h"
#include "common.h"
#include "registry.h"
#include "sde/adjoint.h"
#include "sde/device.h"
#include "sde/errors.h"
#include "sde/neural.h"
#include "sde/problems.h"

namespace addon {
namespace {

at::TensorOptions tensor_options(const Napi::Object& spec) {
  const at::ScalarType dtype = get_string(spec, "dtype") == "float64" ? at::kDouble : at::kFloat;
  return at::TensorOptions().dtype(dtype).device(sde::resolve_device(get_string(spec, "device")));
}

at::Tensor numbers(const Napi::Value& v, const at::TensorOptions& options) {
  // number[] or number[][] (rectangular, checked in TS)
  Napi::Array outer = v.As<Napi::Array>();
  std::vector<double> flat;
  std::vector<int64_t> shape{static_cast<int64_t>(outer.Length())};
  for (uint32_t i = 0; i < outer.Length(); ++i) {
    Napi::Value item = outer.Get(i);
    if (item.IsArray()) {
      Napi::Array inner = item.As<Napi::Array>();
      if (i == 0) shape.push_back(inner.Length());
      for (uint32_t j = 0; j < inner.Length(); ++j) flat.push_back(inner.Get(j).As<Napi::Number>().DoubleValue());
    } else {
      flat.push_back(item.As<Napi::Number>().DoubleValue());
    }
  }
  return at::tensor(flat, at::TensorOptions().dtype(at::kDouble)).view(shape).to(options);
}

sde::MlpSpec mlp_spec(const Napi::Object& o) {
  sde::MlpSpec spec;
  spec.hidden = get_int_array(o, "hidden");
  spec.activation = sde::parse_activation(get_string(o, "activation"));
  spec.time_input = get_bool(o, "timeInput");
  return spec;
}

std::shared_ptr<sde::SDE> make_sde(const Napi::Object& spec) {
  const std::string type = get_string(spec, "type");
  const at::TensorOptions options = tensor_options(spec);
  const sde::SdeType sde_type = sde::parse_sde_type(get_string(spec, "sdeType"));
  if (type == "gbm") {
    return std::make_shared<sde::GeometricBrownianMotion>(
        numbers(spec.Get("mu"), options), numbers(spec.Get("sigma"), options),
        sde::parse_noise_type(get_string(spec, "noiseType")), sde_type);
  }
  if (type == "ou") {
    return std::make_shared<sde::OrnsteinUhlenbeck>(get_number(spec, "theta"), get_number(spec, "mu"),
                                                    get_number(spec, "sigma"), sde_type);
  }
  if (type == "linear") {
    return std::make_shared<sde::LinearAdditive>(numbers(spec.Get("A"), options), numbers(spec.Get("c"), options),
                                                 numbers(spec.Get("b"), options), sde_type);
  }
  if (type == "neural") {
    sde::NeuralSdeSpec n;
    n.d = static_cast<int64_t>(get_number(spec, "d"));
    n.noise = sde::parse_noise_type(get_string(spec, "noiseType"));
    if (n.noise == sde::NoiseType::General) n.m = static_cast<int64_t>(get_number(spec, "m"));
    n.type = sde_type;
    n.drift = mlp_spec(spec.Get("drift").As<Napi::Object>());
    Napi::Object diffusion = spec.Get("diffusion").As<Napi::Object>();
    const std::string kind = get_string(diffusion, "kind");
    n.diffusion_kind = kind == "mlp"        ? sde::DiffusionKind::Mlp
                       : kind == "constant" ? sde::DiffusionKind::Constant
                                            : sde::DiffusionKind::ScaledTanh;
    n.diffusion = mlp_spec(diffusion);
    n.diffusion_output = sde::parse_activation(get_string(diffusion, "output"));
    n.diffusion_offset = get_number(diffusion, "offset");
    n.diffusion_init = get_number(diffusion, "init");
    n.dtype = options.dtype().toScalarType();
    n.device = options.device();
    n.seed = static_cast<uint64_t>(get_number(spec, "seed"));
    n.kernels = sde::parse_kernels(get_string(spec, "kernels"));
    return std::make_shared<sde::NeuralSDE>(n);
  }
  throw sde::invalid_argument("unknown SDE type '" + type + "'");
}

// A JS handle on an SDE. Solves mark it busy so that parameters cannot change under them.
class SdeHandle : public Napi::ObjectWrap<SdeHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeSDE",
                       {InstanceMethod("parameters", &SdeHandle::parameters),
                        InstanceMethod("setParameter", &SdeHandle::set_parameter),
                        InstanceMethod("exact", &SdeHandle::exact), InstanceMethod("dispose", &SdeHandle::dispose)});
  }

  explicit SdeHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SdeHandle>(info) {
    guarded(info.Env(), [&]() -> Napi::Value {
      sde_ = make_sde(info[0].As<Napi::Object>());
      return info.Env().Undefined();
    });
  }

  std::shared_ptr<sde::SDE> get(Napi::Env env) const {
    if (!sde_) throw make_error(env, "ERR_DISPOSED", "this SDE has been disposed");
    return sde_;
  }
  std::atomic<int> busy{0};

 private:
  void check_idle(Napi::Env env) const {
    if (busy.load() > 0) throw make_error(env, "ERR_BUSY", "this SDE is in use by a running solve");
  }

  Napi::Value parameters(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      Napi::Object out = Napi::Object::New(info.Env());
      const auto model = get(info.Env());
      if (auto* neural = dynamic_cast<sde::NeuralSDE*>(model.get())) {
        for (auto& [name, p] : neural->named_parameters()) out.Set(name, tensor_to_js(info.Env(), p));
      } else if (auto* gbm = dynamic_cast<sde::GeometricBrownianMotion*>(model.get())) {
        const auto params = gbm->parameters();
        out.Set("mu", tensor_to_js(info.Env(), params[0]));
        out.Set("sigma", tensor_to_js(info.Env(), params[1]));
      }
      return out;
    });
  }

  Napi::Value set_parameter(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(info.Env());
      auto* neural = dynamic_cast<sde::NeuralSDE*>(get(info.Env()).get());
      if (neural == nullptr) throw sde::invalid_argument("only neural SDEs have settable parameters");
      neural->set_parameter(info[0].As<Napi::String>().Utf8Value(), tensor_from_js(info[1], "value"));
      return info.Env().Undefined();
    });
  }

  // Exact solution of geometric Brownian motion at t for Brownian values w = W(t) - W(t0).
  Napi::Value exact(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      auto* gbm = dynamic_cast<sde::GeometricBrownianMotion*>(get(info.Env()).get());
      if (gbm == nullptr) throw sde::invalid_argument("exact solutions exist for type 'gbm' only");
      at::NoGradGuard no_grad;
      const auto mu = gbm->parameters()[0];
      at::Tensor y0 = finite_tensor_from_js(info[0], "y0").to(mu.options());
      at::Tensor w = finite_tensor_from_js(info[2], "w").to(mu.options());
      return tensor_to_js(info.Env(), gbm->exact(y0, info[1].As<Napi::Number>().DoubleValue(), w));
    });
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(info.Env());
      sde_.reset();
      return info.Env().Undefined();
    });
  }

  std::shared_ptr<sde::SDE> sde_;
};

sde::StepOptions step_options(const Napi::Object& o, const char* prefix) {
  auto key = [&](const char* name) {
    std::string k = std::string(prefix) + name;
    if (*prefix) k[std::string(prefix).size()] = static_cast<char>(std::toupper(k[std::string(prefix).size()]));
    return k;
  };
  sde::StepOptions s;
  s.method = sde::parse_method(get_string(o, key("method").c_str()));
  s.dt = get_number(o, key("dt").c_str());
  s.adaptive = get_bool(o, key("adaptive").c_str());
  s.rtol = get_number(o, key("rtol").c_str());
  s.atol = get_number(o, key("atol").c_str());
  s.dt_min = get_number(o, key("dtMin").c_str());
  s.max_steps = static_cast<int64_t>(get_number(o, "maxSteps"));
  s.max_steps_option = "options.maxSteps";
  return s;
}

std::vector<double> times(const Napi::Value& v) {
  Napi::Array a = v.As<Napi::Array>();
  std::vector<double> ts(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) ts[i] = a.Get(i).As<Napi::Number>().DoubleValue();
  return ts;
}

Napi::Object stats_to_js(Napi::Env env, const sde::SolveStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("nfe", static_cast<double>(s.nfe));
  o.Set("stepsAccepted", static_cast<double>(s.steps_accepted));
  o.Set("stepsRejected", static_cast<double>(s.steps_rejected));
  o.Set("hitDtMin", s.hit_dt_min);
  return o;
}

// Everything a solve needs, gathered on the JS thread.
struct SolveJob {
  SdeHandle* handle = nullptr;
  std::shared_ptr<sde::SDE> sde;
  at::Tensor y0;
  at::Tensor grad_ys;
  std::vector<double> ts;
  sde::StepOptions options, adjoint_options;
  bool adjoint = false;
  std::shared_ptr<sde::BrownianMotion> owned_bm;  // the caller's (shared) or one made for this solve
  sde::BrownianMotion* bm = nullptr;
};

SolveJob prepare(const Napi::CallbackInfo& info, bool with_gradients) {
  Napi::Env env = info.Env();
  SolveJob job;
  job.handle = SdeHandle::Unwrap(info[0].As<Napi::Object>());
  job.sde = job.handle->get(env);
  const auto params = job.sde->parameters();
  Napi::Object opts = info[with_gradients ? 4 : 3].As<Napi::Object>();
  const c10::Device device = sde::resolve_device(get_string(opts, "device"));
  job.y0 = finite_tensor_from_js(info[1], "y0").to(device);
  job.ts = times(info[2]);
  if (with_gradients) job.grad_ys = finite_tensor_from_js(info[3], "gradYs").to(job.y0.options());
  job.options = step_options(opts, "");
  job.adjoint_options = job.options;
  job.adjoint_options.method = sde::parse_method(get_string(opts, "adjointMethod"));
  job.adjoint_options.dt = get_number(opts, "adjointDt");
  job.adjoint_options.adaptive = get_bool(opts, "adjointAdaptive");
  job.adjoint_options.rtol = get_number(opts, "adjointRtol");
  job.adjoint_options.atol = get_number(opts, "adjointAtol");
  job.adjoint = get_bool(opts, "adjoint");
  Napi::Value bm = opts.Get("bm");
  if (bm.IsObject()) {
    job.owned_bm = share_brownian(bm);
  } else {
    sde::BrownianIntervalOptions b;
    b.t0 = job.ts.front();
    b.t1 = job.ts.back();
    b.shape = job.sde->brownian_shape(job.y0);
    b.options = job.y0.options();
    b.seed = static_cast<uint64_t>(get_number(opts, "seed"));
    b.dt_hint = job.options.adaptive ? 0.0 : job.options.dt;
    b.levy_area = job.options.method == sde::Method::Srk;
    job.owned_bm = std::shared_ptr<sde::BrownianMotion>(sde::make_brownian_interval(b));
  }
  job.bm = job.owned_bm.get();
  // Incompatible combinations fail here, synchronously, before any work is queued.
  sde::check_solve(*job.sde, job.y0, job.ts, *job.bm, job.options);
  if (with_gradients && job.adjoint)
    sde::check_adjoint_method(job.options.method, job.adjoint_options.method, *job.sde);
  return job;
}

Napi::Value run_solve(const Napi::CallbackInfo& info, bool with_gradients) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto job = std::make_shared<SolveJob>(prepare(info, with_gradients));
    SdeHandle* handle = job->handle;
    handle->busy.fetch_add(1);
    Task task = [job, with_gradients](const ProgressFn& progress) -> ResultFn {
      struct Release {
        SdeHandle* h;
        ~Release() { h->busy.fetch_sub(1); }
      } release{job->handle};
      // Report about every 5% of the time span, so the event loop is not flooded.
      const double t0 = job->ts.front(), span = job->ts.back() - job->ts.front();
      double next_report = 0.0;
      auto report = [&](const char* stage, double t, const sde::SolveStats& s) {
        progress.check();  // every step: a throwing onProgress stops the solve here
        const double done = std::string(stage) == "forward" ? (t - t0) / span : (job->ts.back() - t) / span;
        if (done < next_report && done < 1.0) return;
        next_report = done + 0.05;
        progress({stage,
                  {{"fraction", done},
                   {"t", t},
                   {"nfe", static_cast<double>(s.nfe)},
                   {"stepsAccepted", static_cast<double>(s.steps_accepted)}}});
      };
      if (!with_gradients) {
        at::NoGradGuard no_grad;
        sde::Solution solution = sde::sdeint(*job->sde, job->y0, job->ts, *job->bm, job->options,
                                             [&](double t, const sde::SolveStats& s) { report("forward", t, s); });
        return [solution](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("ys", tensor_to_js(env, solution.ys));
          o.Set("stats", stats_to_js(env, solution.stats));
          o.Set("route", sde::to_string(solution.route));
          return o;
        };
      }
      sde::GradientResult r =
          job->adjoint ? sde::adjoint_gradients(*job->sde, job->y0, job->ts, *job->bm, job->options,
                                                job->adjoint_options, job->grad_ys,
                                                [&](double t, const sde::SolveStats& s) { report("backward", t, s); })
                       : sde::backprop_gradients(*job->sde, job->y0, job->ts, *job->bm, job->options, job->grad_ys);
      std::vector<std::string> names;
      if (auto* neural = dynamic_cast<sde::NeuralSDE*>(job->sde.get())) {
        for (auto& [name, p] : neural->named_parameters()) names.push_back(name);
      } else if (dynamic_cast<sde::GeometricBrownianMotion*>(job->sde.get())) {
        names = {"mu", "sigma"};
      }
      return [r, names](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("ys", tensor_to_js(env, r.ys));
        o.Set("gradY0", tensor_to_js(env, r.grad_y0));
        Napi::Object grads = Napi::Object::New(env);
        for (size_t i = 0; i < r.grad_params.size() && i < names.size(); ++i)
          grads.Set(names[i], tensor_to_js(env, r.grad_params[i]));
        o.Set("gradParams", grads);
        o.Set("stats", stats_to_js(env, r.forward));
        o.Set("adjointStats", stats_to_js(env, r.backward));
        o.Set("route", sde::to_string(r.route));
        return o;
      };
    };
    std::vector<Napi::Value> keep{info[0], info[1]};
    if (with_gradients) keep.push_back(info[3]);
    Napi::Object opts = info[with_gradients ? 4 : 3].As<Napi::Object>();
    if (opts.Get("bm").IsObject()) keep.push_back(opts.Get("bm"));
    try {
      return run_async(info.Env(), std::move(task), info[with_gradients ? 5 : 4], std::move(keep), "sdebnn.sdeint");
    } catch (...) {
      handle->busy.fetch_sub(1);
      throw;
    }
  });
}

// The engine's method-support table (native/sde/solvers.cpp), which lib/ validates against.
Napi::Value methods(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const auto names = [&](const auto& values) {
      Napi::Array a = Napi::Array::New(env, values.size());
      for (size_t i = 0; i < values.size(); ++i) a.Set(static_cast<uint32_t>(i), sde::to_string(values[i]));
      return a;
    };
    const auto& table = sde::method_table();
    Napi::Array out = Napi::Array::New(env, table.size());
    for (size_t i = 0; i < table.size(); ++i) {
      const sde::MethodInfo& m = table[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", sde::to_string(m.method));
      o.Set("sdeTypes", names(m.sde_types));
      o.Set("noiseTypes", names(m.noise_types));
      o.Set("strongOrder", m.strong_order);
      o.Set("adaptive", m.adaptive);
      Napi::Object adjoint = Napi::Object::New(env);
      adjoint.Set("noiseTypes", names(m.adjoint_noise_types));
      adjoint.Set("requiresMethod", m.adjoint_needs_same_method
                                        ? Napi::Value(Napi::String::New(env, sde::to_string(m.method)))
                                        : env.Null());
      o.Set("adjoint", adjoint);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  });
}

// The engine's activation functions (native/sde/activations.h).
Napi::Value activations(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const auto& all = sde::all_activations();
    Napi::Array a = Napi::Array::New(info.Env(), all.size());
    for (size_t i = 0; i < all.size(); ++i) a.Set(static_cast<uint32_t>(i), sde::to_string(all[i]));
    return a;
  });
}

Napi::Value sdeint(const Napi::CallbackInfo& info) { return run_solve(info, false); }
Napi::Value sdeint_gradients(const Napi::CallbackInfo& info) { return run_solve(info, true); }

}  // namespace

void register_sdeint(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeSDE", SdeHandle::define(env));
  exports.Set("sdeint", Napi::Function::New(env, sdeint, "sdeint"));
  exports.Set("sdeintGradients", Napi::Function::New(env, sdeint_gradients, "sdeintGradients"));
  exports.Set("methods", Napi::Function::New(env, methods, "methods"));
  exports.Set("activations", Napi::Function::New(env, activations, "activations"));
}

}  // namespace addon
