#include "common.h"

#include <c10/util/Exception.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstring>
#include <new>

#include "sde/device.h"
#include "sde/errors.h"

namespace addon {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("code", Napi::String::New(env, code));
  return error;
}

namespace {
// Maps any exception to (code, message). Returns false for Napi::Error (rethrow as is).
std::pair<std::string, std::string> describe(std::exception_ptr eptr) {
  try {
    std::rethrow_exception(eptr);
  } catch (const sde::EngineError& e) {
    return {e.code(), e.what()};
  } catch (const c10::Error& e) {
    return {"ERR_TORCH", e.what_without_backtrace()};
  } catch (const std::bad_alloc&) {
    return {"ERR_OUT_OF_MEMORY", "native allocation failed (out of memory)"};
  } catch (const std::exception& e) {
    return {"ERR_NATIVE", e.what()};
  } catch (...) {
    return {"ERR_NATIVE", "unknown native exception"};
  }
}
}  // namespace

Napi::Value guarded(Napi::Env env, const std::function<Napi::Value()>& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    auto [code, message] = describe(std::current_exception());
    throw make_error(env, code, message);
  }
}

at::Tensor tensor_from_js(const Napi::Value& value, const std::string& field) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw make_error(env, "ERR_INVALID_ARGUMENT", field + ": expected a tensor {data, shape}");
  Napi::Object obj = value.As<Napi::Object>();
  Napi::Value data = obj.Get("data");
  Napi::Value shape_v = obj.Get("shape");
  if (!data.IsTypedArray() || !shape_v.IsArray()) {
    throw make_error(env, "ERR_INVALID_ARGUMENT", field + ": expected {data: Float32Array|Float64Array, shape: number[]}");
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
    default:
      throw make_error(env, "ERR_INVALID_ARGUMENT", field + ".data: expected Float32Array or Float64Array");
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
    throw make_error(env, "ERR_INVALID_ARGUMENT",
                     field + ": shape holds " + std::to_string(numel) + " elements but data has " + std::to_string(length));
  }
  return at::from_blob(ptr, shape, options);
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
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", data);
  out.Set("shape", shape);
  return out;
}

namespace {
[[noreturn]] void missing(const char* key, const char* what, const Napi::Value& v) {
  throw sde::invalid_argument(std::string("Expected ") + what + " for '" + key + "' but received " +
                              (v.IsUndefined() ? "nothing" : v.IsNull() ? "null" : "another type"));
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
      result_ = task_([&progress](const ProgressEvent& e) { progress.Send(&e, 1); });
    } catch (...) {
      auto [code, message] = describe(std::current_exception());
      code_ = code;
      SetError(message);
    }
  }

  void OnProgress(const ProgressEvent* events, size_t count) override {
    if (progress_.IsEmpty() || events == nullptr) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count; ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("stage", events[i].stage);
      for (const auto& [k, v] : events[i].values) o.Set(k, Napi::Number::New(env, v));
      try {
        progress_.Call({o});
      } catch (const Napi::Error& e) {
        // A throwing progress callback must not crash the process; report it, keep working.
        e.Value();  // clears the pending exception
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(result_ ? result_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      auto [code, message] = describe(std::current_exception());
      deferred_.Reject(make_error(env, code, message).Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    deferred_.Reject(make_error(env, code_.empty() ? "ERR_NATIVE" : code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Task task_;
  ResultFn result_;
  std::string code_;
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
