// SDE-BNN models for JavaScript: construction from the config lib/bnn.ts validated and
// flattened, Promise-returning training steps, gradients, prediction and diagnostics, and
// synchronous state get/set. Marshalling only: the model lives in native/bnn.
#include <ATen/ATen.h>

#include <atomic>
#include <memory>
#include <optional>

#include "bnn.h"
#include "bnn/model.h"
#include "common.h"
#include "registry.h"
#include "sde/device.h"
#include "sde/errors.h"

namespace addon {
namespace {

// Marks our instances, so share_idle_bnn_model never reinterprets a foreign object.
constexpr napi_type_tag kBnnTag = {0x5d3b9e0c2a714f68ULL, 0xb1c4e7f02d9a3856ULL};

// The config lib/bnn.ts resolved (nativeConfig): every field is required, one line per field in
// config.h's order (the same few shapes, by design).
bnn::BnnConfig read_config(const Napi::Object& o) {
  bnn::BnnConfig c;
  c.model = bnn::parse_model(get_string(o, "model"));
  c.kind = bnn::parse_kind(get_string(o, "kind"));
  c.input_shape = get_int_array(o, "inputShape");
  c.aug = static_cast<int64_t>(get_number(o, "aug"));
  c.hidden = get_int_array(o, "hidden");
  c.activation = sde::parse_activation(get_string(o, "activation"));
  c.time_input = get_bool(o, "timeInput");
  c.output_last = get_bool(o, "outputLast");
  c.mlp_blocks = static_cast<int64_t>(get_number(o, "mlpBlocks"));
  c.stem_channels = static_cast<int64_t>(get_number(o, "stemChannels"));
  c.blocks = get_int_array(o, "blocks");
  c.widths = get_int_array(o, "widths");
  c.conv_activation = sde::parse_activation(get_string(o, "convActivation"));
  c.pool = static_cast<int64_t>(get_number(o, "pool"));
  c.outputs = static_cast<int64_t>(get_number(o, "outputs"));
  c.likelihood = bnn::parse_likelihood(get_string(o, "likelihood"));
  c.scale = get_number(o, "scale");
  c.learn_scale = get_bool(o, "learnScale");
  c.sigma = get_number(o, "sigma");
  c.hyper_hidden = get_int_array(o, "hyperHidden");
  c.hyper_activation = sde::parse_activation(get_string(o, "hyperActivation"));
  c.w0_init = bnn::parse_w0_init(get_string(o, "w0Init"));
  c.w0_std = get_number(o, "w0Std");
  c.w0_gaussian = get_bool(o, "w0Gaussian");
  c.w0_prior_std = get_number(o, "w0PriorStd");
  c.w0_rho_init = get_number(o, "w0RhoInit");
  c.estimator = bnn::parse_estimator(get_string(o, "estimator"));
  c.solver.method = sde::parse_method(get_string(o, "method"));
  c.solver.steps = static_cast<int64_t>(get_number(o, "steps"));
  c.solver.adaptive = get_bool(o, "adaptive");
  c.solver.rtol = get_number(o, "rtol");
  c.solver.atol = get_number(o, "atol");
  c.solver.dt_min = get_number(o, "dtMin");
  c.solver.gradient = bnn::parse_gradient_route(get_string(o, "gradient"));
  c.solver.adjoint_method = sde::parse_method(get_string(o, "adjointMethod"));
  c.solver.adjoint_steps = static_cast<int64_t>(get_number(o, "adjointSteps"));
  c.solver.adjoint_adaptive = get_bool(o, "adjointAdaptive");
  c.solver.max_steps = static_cast<int64_t>(get_number(o, "maxSteps"));
  c.beta = get_number(o, "beta");
  c.n_train = get_number(o, "nTrain");
  c.lr = get_number(o, "lr");
  c.adam_beta1 = get_number(o, "adamBeta1");
  c.adam_beta2 = get_number(o, "adamBeta2");
  c.adam_eps = get_number(o, "adamEps");
  c.clip = get_number(o, "clip");
  c.ema = get_number(o, "ema");
  c.seed = static_cast<uint64_t>(get_number(o, "seed"));
  c.kernels = sde::parse_kernels(get_string(o, "kernels"));
  c.cuda_graph = get_bool(o, "cudaGraph");
  const std::string dtype = get_string(o, "dtype");
  if (dtype != "float32" && dtype != "float64")
    throw sde::invalid_argument("Expected 'float32' or 'float64' for dtype but received '" + dtype + "'");
  c.dtype = dtype == "float64" ? at::kDouble : at::kFloat;
  c.device = sde::resolve_device(get_string(o, "device"));
  return c;
}

// {data, shape} with data a Float32Array, Float64Array, Int32Array or Uint8Array (class labels)
// (common.cc's tensor_from_js, widened to the label types: the same typed-array switch),
// viewed without a copy.
at::Tensor numeric_from_js(const Napi::Value& value, const std::string& field) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw make_error(env, "ERR_INVALID_ARGUMENT", field + ": expected a tensor {data, shape}");
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value data = obj.Get("data");
  if (!data.IsTypedArray()) throw make_error(env, "ERR_INVALID_ARGUMENT", field + ".data: expected a typed array");
  Napi::TypedArray typed = data.As<Napi::TypedArray>();
  at::ScalarType dtype;
  void* ptr;
  switch (typed.TypedArrayType()) {
    case napi_int32_array:
      dtype = at::kInt;
      ptr = data.As<Napi::Int32Array>().Data();
      break;
    case napi_uint8_array:
      dtype = at::kByte;
      ptr = data.As<Napi::Uint8Array>().Data();
      break;
    default: return tensor_from_js(value, field);
  }
  const auto n = static_cast<int64_t>(typed.ElementLength());
  const std::vector<int64_t> shape = obj.Get("shape").IsArray() ? get_int_array(obj, "shape") : std::vector<int64_t>{n};
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (numel != n) throw make_error(env, "ERR_INVALID_ARGUMENT", field + ": shape does not match data");
  return at::from_blob(ptr, shape, at::TensorOptions().dtype(dtype));
}

std::optional<uint64_t> optional_seed(const Napi::Object& o) {
  Napi::Value v = o.Get("seed");
  if (!v.IsNumber()) return std::nullopt;
  return static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
}

Napi::Object named_to_js(Napi::Env env, const bnn::NamedTensors& named) {
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [name, t] : named) out.Set(name, tensor_to_js(env, t));
  return out;
}

// The addon's handle classes (this, sdeint.cc's SDE, distributed.cc's process group) share
// node-addon-api's shape: DefineClass, guarded bodies, dispose after check_idle. Each asynchronous
// method reads its arguments, marks the model busy and queues a Task: the same steps, other work.
class BnnHandle : public Napi::ObjectWrap<BnnHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(
        env, "NativeSdeBnn",
        {InstanceMethod("info", &BnnHandle::info), InstanceMethod("trainStep", &BnnHandle::train_step),
         InstanceMethod("gradients", &BnnHandle::gradients), InstanceMethod("predict", &BnnHandle::predict),
         InstanceMethod("diagnose", &BnnHandle::diagnose), InstanceMethod("getState", &BnnHandle::get_state),
         InstanceMethod("setState", &BnnHandle::set_state), InstanceMethod("dispose", &BnnHandle::dispose)});
  }

  explicit BnnHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BnnHandle>(info) {
    guarded(info.Env(), [&]() -> Napi::Value {
      model_ = std::make_shared<bnn::BnnModel>(read_config(info[0].As<Napi::Object>()));
      info.This().As<Napi::Object>().TypeTag(&kBnnTag);
      return info.Env().Undefined();
    });
  }

 private:
  std::shared_ptr<bnn::BnnModel> model(Napi::Env env) const {
    if (!model_) throw make_error(env, "ERR_DISPOSED", "this SdeBnn has been disposed");
    return model_;
  }
  void check_idle(Napi::Env env) const {
    if (busy_->load()) throw make_error(env, "ERR_BUSY", "this SdeBnn is busy with a running step; await it first");
  }
  // Marks the model busy until the returned guard (owned by the task) is destroyed.
  std::shared_ptr<void> acquire(Napi::Env env) {
    if (busy_->exchange(true))
      throw make_error(env, "ERR_BUSY", "this SdeBnn is busy with a running step; await it first");
    auto busy = busy_;
    return std::shared_ptr<void>(nullptr, [busy](void*) { busy->store(false); });
  }
  static std::vector<Napi::Value> keep(const Napi::CallbackInfo& info, size_t n) {
    std::vector<Napi::Value> out;
    for (size_t i = 0; i < n && i < info.Length(); ++i) {
      out.push_back(info[i]);
      if (info[i].IsObject()) out.push_back(info[i].As<Napi::Object>().Get("data"));
    }
    return out;
  }

  Napi::Value info(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto m = model(info.Env());
      Napi::Env env = info.Env();
      Napi::Object o = Napi::Object::New(env);
      const auto dims = m->w_dims();
      Napi::Array w = Napi::Array::New(env, dims.size());
      for (size_t i = 0; i < dims.size(); ++i) w.Set(static_cast<uint32_t>(i), static_cast<double>(dims[i]));
      o.Set("wDims", w);
      o.Set("numParameters", static_cast<double>(m->num_parameters()));
      const auto names = m->parameter_names();
      Napi::Array n = Napi::Array::New(env, names.size());
      for (size_t i = 0; i < names.size(); ++i) n.Set(static_cast<uint32_t>(i), names[i]);
      o.Set("parameterNames", n);
      o.Set("device", m->config().device.str());
      o.Set("scale", m->likelihood_scale());
      // The routes select_route picks (bnn/routes.h): 'direct' is the buffered solver without a graph.
      Napi::Object routes = Napi::Object::New(env);
      for (const bool gradients : {true, false}) {
        const bnn::ModelRoute r = m->route(gradients);
        routes.Set(gradients ? "train" : "predict",
                   r.solve == sde::Route::Buffered && !r.graph ? "direct" : sde::to_string(r.solve));
      }
      o.Set("routes", routes);
      return o;
    });
  }

  Napi::Value train_step(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto m = model(info.Env());
      const at::Tensor x = finite_tensor_from_js(info[0], "inputs");
      const at::Tensor y = numeric_from_js(info[1], "targets");
      Napi::Object opts = info[2].As<Napi::Object>();
      const double lr = get_number(opts, "lr");
      const double beta = get_number(opts, "beta");
      auto guard = acquire(info.Env());
      Task task = [m, x, y, lr, beta, guard](const ProgressFn&) mutable -> ResultFn {
        const std::shared_ptr<void> release = std::move(guard);  // not busy once the work is done
        const bnn::StepResult r = m->train_step(x, y, lr, beta);
        return [r](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("loss", r.loss);
          o.Set("nll", r.nll);
          o.Set("kl", r.kl);
          o.Set("klW0", r.kl_w0);
          o.Set("accuracy", r.accuracy >= 0 ? Napi::Number::New(env, r.accuracy) : env.Null());
          o.Set("gradNorm", r.grad_norm);
          o.Set("nfe", static_cast<double>(r.nfe));
          o.Set("nfeBackward", static_cast<double>(r.nfe_backward));
          o.Set("steps", static_cast<double>(r.steps));
          o.Set("tEnd", r.t_end);
          return o;
        };
      };
      return run_async(info.Env(), std::move(task), info.Env().Undefined(), keep(info, 2), "sdebnn.trainStep");
    });
  }

  Napi::Value gradients(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto m = model(info.Env());
      const at::Tensor x = finite_tensor_from_js(info[0], "inputs");
      const at::Tensor y = numeric_from_js(info[1], "targets");
      Napi::Object opts = info[2].As<Napi::Object>();
      const double beta = get_number(opts, "beta");
      const bnn::Objective objective =
          get_string(opts, "objective") == "kl" ? bnn::Objective::Kl : bnn::Objective::Loss;
      const std::optional<uint64_t> seed = optional_seed(opts);
      auto guard = acquire(info.Env());
      Task task = [m, x, y, beta, objective, seed, guard](const ProgressFn&) mutable -> ResultFn {
        const std::shared_ptr<void> release = std::move(guard);  // not busy once the work is done
        auto r = std::make_shared<bnn::GradientsResult>(m->gradients(x, y, beta, objective, seed));
        return [r](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("loss", r->loss);
          o.Set("nll", r->nll);
          o.Set("kl", r->kl);
          o.Set("grads", named_to_js(env, r->grads));
          return o;
        };
      };
      return run_async(info.Env(), std::move(task), info.Env().Undefined(), keep(info, 2), "sdebnn.gradients");
    });
  }

  Napi::Value predict(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto m = model(info.Env());
      const at::Tensor x = finite_tensor_from_js(info[0], "inputs");
      Napi::Object opts = info[1].As<Napi::Object>();
      bnn::PredictOptions o;
      o.samples = static_cast<int64_t>(get_number(opts, "samples"));
      o.use_ema = get_bool(opts, "ema");
      o.seed = optional_seed(opts);
      o.keep_samples = get_bool(opts, "keepSamples");
      o.deterministic = get_bool(opts, "deterministic");
      auto guard = acquire(info.Env());
      Task task = [m, x, o, guard](const ProgressFn&) mutable -> ResultFn {
        const std::shared_ptr<void> release = std::move(guard);  // not busy once the work is done
        const bnn::Prediction p = m->predict(x, o);
        return [p](Napi::Env env) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          if (p.mean.defined()) out.Set("mean", tensor_to_js(env, p.mean));
          if (p.samples.defined()) out.Set("samples", tensor_to_js(env, p.samples));
          return out;
        };
      };
      return run_async(info.Env(), std::move(task), info.Env().Undefined(), keep(info, 1), "sdebnn.predict");
    });
  }

  Napi::Value diagnose(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto m = model(info.Env());
      const at::Tensor x = finite_tensor_from_js(info[0], "inputs");
      Napi::Object opts = info[1].As<Napi::Object>();
      const std::optional<uint64_t> seed = optional_seed(opts);
      auto guard = acquire(info.Env());
      Task task = [m, x, seed, guard](const ProgressFn&) mutable -> ResultFn {
        const std::shared_ptr<void> release = std::move(guard);  // not busy once the work is done
        auto blocks = std::make_shared<std::vector<bnn::BlockDiagnostics>>(m->diagnose(x, seed));
        return [blocks](Napi::Env env) -> Napi::Value {
          Napi::Array a = Napi::Array::New(env, blocks->size());
          for (size_t i = 0; i < blocks->size(); ++i) {
            const auto& d = (*blocks)[i];
            Napi::Object o = Napi::Object::New(env);
            o.Set("tEnd", d.t_end);
            o.Set("steps", static_cast<double>(d.steps));
            o.Set("nfe", static_cast<double>(d.nfe));
            o.Set("w0", tensor_to_js(env, d.w0));
            o.Set("w1", tensor_to_js(env, d.w1));
            o.Set("kl", d.kl);
            o.Set("klDb", d.kl_db);
            a.Set(static_cast<uint32_t>(i), o);
          }
          return a;
        };
      };
      return run_async(info.Env(), std::move(task), info.Env().Undefined(), keep(info, 1), "sdebnn.diagnose");
    });
  }

  Napi::Value get_state(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto m = model(info.Env());
      check_idle(info.Env());
      return named_to_js(info.Env(), m->state());
    });
  }

  Napi::Value set_state(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto m = model(info.Env());
      check_idle(info.Env());
      Napi::Object o = info[0].As<Napi::Object>();
      Napi::Array keys = o.GetPropertyNames();
      bnn::NamedTensors state;
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        const std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
        state.emplace_back(name, tensor_from_js(o.Get(name), "state['" + name + "']"));
      }
      m->set_state(state, info[1].IsBoolean() ? info[1].As<Napi::Boolean>().Value() : true);
      return info.Env().Undefined();
    });
  }

  Napi::Value dispose(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(info.Env());
      model_.reset();
      return info.Env().Undefined();
    });
  }

  std::shared_ptr<bnn::BnnModel> model_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);

  friend std::shared_ptr<bnn::BnnModel> addon::share_idle_bnn_model(Napi::Value value);
};

}  // namespace

std::shared_ptr<bnn::BnnModel> share_idle_bnn_model(Napi::Value value) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kBnnTag)) {
    throw make_error(env, "ERR_INVALID_ARGUMENT", "expected a native SdeBnn");
  }
  BnnHandle* handle = BnnHandle::Unwrap(value.As<Napi::Object>());
  handle->check_idle(env);
  return handle->model(env);
}

void register_bnn(Napi::Env env, Napi::Object exports) { exports.Set("SdeBnn", BnnHandle::define(env)); }

}  // namespace addon
