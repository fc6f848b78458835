#include "common.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/nonzero.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstring>
#include <new>
#include <optional>
#include <sstream>

#include "sde/cuda_math.h"
#include "sde/device.h"
#include "sde/errors.h"

namespace addon {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message, const std::string& option) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("code", Napi::String::New(env, code));
  if (!option.empty()) error.Value().Set("option", Napi::String::New(env, option));
  return error;
}

namespace {
struct Failure {
  std::string code, message, option;
};

// Maps any native exception to its code, message and (limits) option.
Failure describe(std::exception_ptr eptr) {
  try {
    std::rethrow_exception(eptr);
  } catch (const sde::EngineError& e) {
    return {e.code(), e.what(), e.option()};
  } catch (const c10::Error& e) {
    return {"ERR_TORCH", e.what_without_backtrace(), ""};
  } catch (const std::bad_alloc&) {
    return {"ERR_OUT_OF_MEMORY", "native allocation failed (out of memory)", ""};
  } catch (const std::exception& e) {
    // c10's Scalar conversion throws a plain runtime_error for a number the tensors' dtype cannot
    // hold (say beta 1e300 in a float32 model): a numerical failure, not an unknown one.
    const std::string what = e.what();
    if (what.rfind("value cannot be converted to type", 0) == 0) {
      return {"ERR_NUMERICAL", what + " (a setting or input too large for the dtype; use smaller values or float64)",
              ""};
    }
    return {"ERR_NATIVE", what, ""};
  } catch (...) {
    return {"ERR_NATIVE", "unknown native exception", ""};
  }
}

// Thrown inside a task by ProgressFn::check() once the JS progress callback has thrown.
struct Stopped {};

// JavaScript's spelling of a number, for messages about input values.
std::string js_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::ostringstream out;
  out << v;
  return out.str();
}

// Whether every value of a contiguous CPU array is finite: x - x is 0 for finite x and NaN otherwise.
template <typename T>
bool all_finite(const T* x, int64_t n) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= !(x[i] - x[i] == T(0));
  return bad == 0;
}
}  // namespace

void ProgressFn::check() const {
  if (stop_ != nullptr && stop_->load()) throw Stopped{};
}

Napi::Value guarded(Napi::Env env, const std::function<Napi::Value()>& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    const Failure f = describe(std::current_exception());
    throw make_error(env, f.code, f.message, f.option);
  }
}

at::Tensor tensor_from_js(const Napi::Value& value, const std::string& field) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw make_error(env, "ERR_INVALID_ARGUMENT", field + ": expected a tensor {data, shape}");
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value data = obj.Get("data");
  Napi::Value shape_v = obj.Get("shape");
  if (!data.IsTypedArray() || !shape_v.IsArray()) {
    throw make_error(env, "ERR_INVALID_ARGUMENT",
                     field + ": expected {data: Float32Array|Float64Array, shape: number[]}");
  }
  Napi::TypedArray typed = data.As<Napi::TypedArray>();
  at::ScalarType dtype;
  void* ptr;
  switch (typed.TypedArrayType()) {
    case napi_float32_array:
      dtype = at::kFloat;
      ptr = data.As<Napi::Float32Array>().Data();
      break;
    case napi_float64_array:
      dtype = at::kDouble;
      ptr = data.As<Napi::Float64Array>().Data();
      break;
    default: throw make_error(env, "ERR_INVALID_ARGUMENT", field + ".data: expected Float32Array or Float64Array");
  }
  Napi::Array shape_a = shape_v.As<Napi::Array>();
  std::vector<int64_t> shape(shape_a.Length());
  int64_t numel = 1;
  for (uint32_t i = 0; i < shape_a.Length(); ++i) {
    shape[i] = shape_a.Get(i).As<Napi::Number>().Int64Value();
    if (shape[i] < 0) throw make_error(env, "ERR_INVALID_ARGUMENT", field + ".shape: negative size");
    numel *= shape[i];
  }
  const auto length = static_cast<int64_t>(typed.ElementLength());
  auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  Napi::Value strides_v = obj.Get("strides");
  if (strides_v.IsArray()) {
    Napi::Array strides_a = strides_v.As<Napi::Array>();
    if (strides_a.Length() != shape.size()) {
      throw make_error(env, "ERR_INVALID_ARGUMENT", field + ".strides: expected one stride per dimension");
    }
    std::vector<int64_t> strides(shape.size());
    int64_t last = 0;
    for (uint32_t i = 0; i < strides_a.Length(); ++i) {
      strides[i] = strides_a.Get(i).As<Napi::Number>().Int64Value();
      if (strides[i] < 0) throw make_error(env, "ERR_INVALID_ARGUMENT", field + ".strides: negative stride");
      if (shape[i] > 0) last += (shape[i] - 1) * strides[i];
    }
    if (numel > 0 && last >= length) {
      throw make_error(env, "ERR_INVALID_ARGUMENT", field + ": strides reach past the end of data");
    }
    return at::from_blob(ptr, shape, strides, options);
  }
  if (numel != length) {
    throw make_error(
        env, "ERR_INVALID_ARGUMENT",
        field + ": shape holds " + std::to_string(numel) + " elements but data has " + std::to_string(length));
  }
  return at::from_blob(ptr, shape, options);
}

at::Tensor finite_tensor_from_js(const Napi::Value& value, const std::string& field) {
  const at::Tensor t = tensor_from_js(value, field);
  if (t.numel() == 0) return t;
  bool finite;
  if (t.is_contiguous()) {
    finite = t.scalar_type() == at::kDouble ? all_finite(t.data_ptr<double>(), t.numel())
                                            : all_finite(t.data_ptr<float>(), t.numel());
  } else {
    finite = at::isfinite(t).all().item<bool>();
  }
  if (finite) return t;
  // The first bad element, by its index in the tensor (not in data, which strides may skip over).
  const at::Tensor where = at::nonzero(at::isfinite(t).logical_not())[0];
  at::Tensor element = t;
  std::string index;
  for (int64_t d = 0; d < where.numel(); ++d) {
    const int64_t i = where[d].item<int64_t>();
    index += (d ? ", " : "") + std::to_string(i);
    element = element.select(0, i);
  }
  throw make_error(value.Env(), "ERR_INVALID_ARGUMENT",
                   "Expected finite numbers for " + field + " but " + field + (t.dim() ? "[" + index + "]" : "") +
                       " is " + js_number(element.item<double>()));
}

Napi::Object tensor_to_js(Napi::Env env, const at::Tensor& tensor) {
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  const int64_t n = t.numel();
  Napi::Value data;
  if (t.scalar_type() == at::kDouble) {
    auto arr = Napi::Float64Array::New(env, static_cast<size_t>(n));
    if (n > 0) std::memcpy(arr.Data(), t.data_ptr<double>(), n * sizeof(double));
    data = arr;
  } else {
    if (t.scalar_type() != at::kFloat) t = t.to(at::kFloat);
    auto arr = Napi::Float32Array::New(env, static_cast<size_t>(n));
    if (n > 0) std::memcpy(arr.Data(), t.data_ptr<float>(), n * sizeof(float));
    data = arr;
  }
  Napi::Array shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i)
    shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", data);
  out.Set("shape", shape);
  return out;
}

namespace {
[[noreturn]] void missing(const char* key, const char* what, const Napi::Value& v) {
  throw sde::invalid_argument(std::string("Expected ") + what + " for '" + key + "' but received " +
                              (v.IsUndefined() ? "nothing"
                               : v.IsNull()    ? "null"
                                               : "another type"));
}
}  // namespace

std::string get_string(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) missing(key, "a string", v);
  return v.As<Napi::String>().Utf8Value();
}
double get_number(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) missing(key, "a number", v);
  return v.As<Napi::Number>().DoubleValue();
}
bool get_bool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) missing(key, "a boolean", v);
  return v.As<Napi::Boolean>().Value();
}
std::vector<int64_t> get_int_array(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) missing(key, "an array of integers", v);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  return out;
}

namespace {

class TaskWorker : public Napi::AsyncProgressQueueWorker<ProgressEvent> {
 public:
  TaskWorker(Napi::Env env, const char* name, Task task, Napi::Value on_progress, std::vector<Napi::Value> keep)
      : Napi::AsyncProgressQueueWorker<ProgressEvent>(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        task_(std::move(task)) {
    if (on_progress.IsFunction()) progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
    for (auto& v : keep) {
      if (v.IsObject()) keep_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
  }

  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    try {
      sde::apply_num_threads();
      sde::apply_cuda_math_mode();
      result_ = task_(ProgressFn([&progress](const ProgressEvent& e) { progress.Send(&e, 1); }, &stop_));
    } catch (const Stopped&) {
      SetError("stopped: the progress callback threw");  // OnError rejects with the callback's error
    } catch (...) {
      failure_ = describe(std::current_exception());
      SetError(failure_.message);
    }
  }

  void OnProgress(const ProgressEvent* events, size_t count) override {
    if (progress_.IsEmpty() || events == nullptr) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count && !callback_error_; ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("stage", events[i].stage);
      for (const auto& [k, v] : events[i].values) o.Set(k, Napi::Number::New(env, v));
      try {
        progress_.Call({o});
      } catch (const Napi::Error& e) {
        // Kept for the Promise (the callback's own thrown value, not a copy); the task stops at its
        // next step, and no further events are delivered.
        callback_error_.emplace(e);  // copy-constructed: Error's operator= cannot hold a thrown primitive
        stop_.store(true);
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (callback_error_) {  // the callback threw at the last report
      deferred_.Reject(callback_error_->Value());
      return;
    }
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      const Failure f = describe(std::current_exception());
      deferred_.Reject(make_error(env, f.code, f.message, f.option).Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (callback_error_) {
      deferred_.Reject(callback_error_->Value());
      return;
    }
    deferred_.Reject(
        make_error(env, failure_.code.empty() ? "ERR_NATIVE" : failure_.code, e.Message(), failure_.option).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Task task_;
  ResultFn result_;
  Failure failure_;
  std::atomic<bool> stop_{false};
  std::optional<Napi::Error> callback_error_;  // what the progress callback threw (Value() unwraps a primitive)
  Napi::FunctionReference progress_;
  std::vector<Napi::ObjectReference> keep_;
};

}  // namespace

Napi::Promise run_async(Napi::Env env, Task task, Napi::Value on_progress, std::vector<Napi::Value> keep_alive,
                        const char* name) {
  auto* worker = new TaskWorker(env, name, std::move(task), on_progress, std::move(keep_alive));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace addon
