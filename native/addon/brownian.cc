// BrownianInterval: a JS class over sde::make_brownian_interval.
#include "brownian.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>

#include "common.h"
#include "registry.h"
#include "sde/device.h"
#include "sde/errors.h"

namespace addon {
namespace {

// Marks our instances, so unwrap_brownian never reinterprets a foreign object.
constexpr napi_type_tag kBrownianTag = {0x8f3c1b2a5d4e6f70ULL, 0x1a2b3c4d5e6f7081ULL};

class BrownianIntervalWrap : public Napi::ObjectWrap<BrownianIntervalWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "BrownianInterval",
                       {InstanceMethod<&BrownianIntervalWrap::increment>("increment"),
                        InstanceMethod<&BrownianIntervalWrap::increment_and_levy_area>("incrementAndLevyArea"),
                        InstanceMethod<&BrownianIntervalWrap::increment_into>("incrementInto"),
                        InstanceMethod<&BrownianIntervalWrap::increment_and_levy_area_into>("incrementAndLevyAreaInto"),
                        InstanceMethod<&BrownianIntervalWrap::cache_entries>("cacheEntries"),
                        InstanceMethod<&BrownianIntervalWrap::stats>("stats"),
                        InstanceMethod<&BrownianIntervalWrap::dispose>("dispose")});
  }

  // new BrownianInterval({t0, t1, shape, seed, dtype, device, dtHint, levyArea, cacheSize});
  // the TS layer validated the options.
  explicit BrownianIntervalWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BrownianIntervalWrap>(info) {
    guarded(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) throw sde::invalid_argument("BrownianInterval: expected an options object");
      Napi::Object o = info[0].As<Napi::Object>();
      // Fields left out (a C++-shaped call; lib/brownian.ts passes them all) keep
      // BrownianIntervalOptions' own values, as a C++ caller's would.
      sde::BrownianIntervalOptions opts;
      const auto has = [&](const char* key) { return !o.Get(key).IsUndefined(); };
      if (has("t0")) opts.t0 = get_number(o, "t0");
      if (has("t1")) opts.t1 = get_number(o, "t1");
      Napi::Value shape = o.Get("shape");
      if (!shape.IsArray()) throw sde::invalid_argument("BrownianInterval: expected an array for shape");
      Napi::Array a = shape.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) opts.shape.push_back(a.Get(i).As<Napi::Number>().Int64Value());
      const double seed = has("seed") ? get_number(o, "seed") : 0.0;
      if (!(seed >= 0 && seed <= 9007199254740991.0))
        throw sde::invalid_argument("BrownianInterval: seed out of range");
      opts.seed = static_cast<uint64_t>(seed);
      const std::string dtype = has("dtype") ? get_string(o, "dtype") : "float32";
      if (dtype != "float32" && dtype != "float64")
        throw sde::invalid_argument("BrownianInterval: unknown dtype '" + dtype + "'");
      opts.options = at::TensorOptions()
                         .dtype(dtype == "float64" ? at::kDouble : at::kFloat)
                         .device(sde::resolve_device(has("device") ? get_string(o, "device") : "cpu"));
      if (has("dtHint")) opts.dt_hint = get_number(o, "dtHint");
      if (has("levyArea")) opts.levy_area = get_bool(o, "levyArea");
      if (has("cacheSize")) opts.cache_size = static_cast<int64_t>(get_number(o, "cacheSize"));
      bm_ = sde::make_brownian_interval(opts);
      info.This().As<Napi::Object>().TypeTag(&kBrownianTag);
      return info.Env().Undefined();
    });
  }

  const std::shared_ptr<sde::BrownianMotion>& get(Napi::Env env) const {
    if (!bm_) throw make_error(env, "ERR_DISPOSED", "BrownianInterval: used after dispose()");
    return bm_;
  }

 private:
  Napi::Value increment(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto& bm = get(info.Env());
      return tensor_to_js(info.Env(), bm->increment(number(info[0], "s"), number(info[1], "t")));
    });
  }

  Napi::Value increment_and_levy_area(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto& bm = get(info.Env());
      auto [W, H] = bm->increment_and_levy_area(number(info[0], "s"), number(info[1], "t"));
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("W", tensor_to_js(info.Env(), W));
      o.Set("H", tensor_to_js(info.Env(), H));
      return o;
    });
  }

  // incrementInto(s, t, W): fills a caller-made typed array in place. The TS layer uses it:
  // V8 allocates the array faster than a native call can, and no tensor is copied (about 1 us
  // of the 2-3 us a small query takes).
  Napi::Value increment_into(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto& bm = get(info.Env());
      const double s = number(info[0], "s"), t = number(info[1], "t");
      bm->increment_into(s, t, view_of(info[2], *bm, "W"));
      return info.Env().Undefined();
    });
  }

  Napi::Value increment_and_levy_area_into(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const auto& bm = get(info.Env());
      const double s = number(info[0], "s"), t = number(info[1], "t");
      bm->increment_and_levy_area_into(s, t, view_of(info[2], *bm, "W"), view_of(info[3], *bm, "H"));
      return info.Env().Undefined();
    });
  }

  // A CPU tensor over a typed array of the instance's dtype and numel.
  static at::Tensor view_of(const Napi::Value& v, const sde::BrownianMotion& bm, const char* field) {
    const bool f64 = bm.options().dtype() == caffe2::TypeMeta::Make<double>();
    const napi_typedarray_type want = f64 ? napi_float64_array : napi_float32_array;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want) {
      throw sde::invalid_argument(std::string("BrownianInterval: expected a ") +
                                  (f64 ? "Float64Array" : "Float32Array") + " for " + field);
    }
    Napi::TypedArray a = v.As<Napi::TypedArray>();
    int64_t n = 1;
    for (int64_t d : bm.shape()) n *= d;
    if (static_cast<int64_t>(a.ElementLength()) != n) {
      throw sde::invalid_argument(std::string("BrownianInterval: expected ") + std::to_string(n) + " elements for " +
                                  field + " but received " + std::to_string(a.ElementLength()));
    }
    void* ptr = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    return at::from_blob(ptr, bm.shape(), at::TensorOptions().dtype(f64 ? at::kDouble : at::kFloat));
  }

  Napi::Value cache_entries(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      return Napi::Number::New(info.Env(),
                               static_cast<double>(sde::brownian_interval_stats(*get(info.Env())).cache_entries));
    });
  }

  Napi::Value stats(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const sde::BrownianIntervalStats s = sde::brownian_interval_stats(*get(info.Env()));
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("cacheEntries", static_cast<double>(s.cache_entries));
      o.Set("cacheSize", static_cast<double>(s.cache_size));
      o.Set("nodes", static_cast<double>(s.nodes));
      o.Set("splitsComputed", static_cast<double>(s.splits_computed));
      return o;
    });
  }

  // Frees the tree and cached tensors now (async work holding a share_brownian keeps its copy).
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      bm_.reset();
      return info.Env().Undefined();
    });
  }

  // Queries arrive as doubles; NaN passes through so the engine names the problem.
  static double number(const Napi::Value& v, const char* field) {
    if (!v.IsNumber()) throw sde::invalid_argument(std::string("BrownianInterval: expected a number for ") + field);
    return v.As<Napi::Number>().DoubleValue();
  }

  std::shared_ptr<sde::BrownianMotion> bm_;
};

BrownianIntervalWrap* unwrap_wrap(Napi::Value value) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kBrownianTag)) {
    throw make_error(env, "ERR_INVALID_ARGUMENT", "expected a native BrownianInterval");
  }
  return BrownianIntervalWrap::Unwrap(value.As<Napi::Object>());
}

}  // namespace

sde::BrownianMotion* unwrap_brownian(Napi::Value value) { return unwrap_wrap(value)->get(value.Env()).get(); }

std::shared_ptr<sde::BrownianMotion> share_brownian(Napi::Value value) { return unwrap_wrap(value)->get(value.Env()); }

void register_brownian(Napi::Env env, Napi::Object exports) {
  exports.Set("BrownianInterval", BrownianIntervalWrap::define(env));
}

}  // namespace addon
