// Node-API glue shared by every binding: error conversion, tensor marshalling and the
// Promise-returning worker with progress. No maths here.
#pragma once
#include <napi.h>

#include <ATen/core/Tensor.h>

#include <atomic>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace addon {

// A JS Error with a `code` property (the TS layer maps codes to Error classes) and, for
// ERR_LIMIT, an `option` property naming the setting that raises the limit.
Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message,
                       const std::string& option = "");

// Runs `body`, turning engine, LibTorch and standard exceptions into JS errors with codes,
// so nothing thrown natively can take the process down.
Napi::Value guarded(Napi::Env env, const std::function<Napi::Value()>& body);

// Reads a {data: Float32Array|Float64Array, shape: number[], strides?: number[]} descriptor
// as a tensor that views the JS memory (no copy). The caller keeps the JS object alive for
// as long as the tensor is used (see Keep below for async work).
at::Tensor tensor_from_js(const Napi::Value& value, const std::string& field);

// tensor_from_js for an input whose values must be finite (y0, gradYs, inputs): NaN or
// Infinity is ERR_INVALID_ARGUMENT naming the field and the first bad element. One pass over
// the values; parameters and states are read with tensor_from_js (they are checked where used).
at::Tensor finite_tensor_from_js(const Napi::Value& value, const std::string& field);

// Copies a tensor (any device, any layout) into {data, shape} with a fresh typed array.
Napi::Object tensor_to_js(Napi::Env env, const at::Tensor& tensor);

// Readers of the configs and option bags that lib/ validated and completed: every field is
// required (defaults live in lib/ alone), and a missing or mistyped one throws
// ERR_INVALID_ARGUMENT naming it.
std::string get_string(const Napi::Object& o, const char* key);
double get_number(const Napi::Object& o, const char* key);
bool get_bool(const Napi::Object& o, const char* key);
std::vector<int64_t> get_int_array(const Napi::Object& o, const char* key);

// A progress report: named numbers, delivered to the JS callback as a plain object.
struct ProgressEvent {
  std::string stage;
  std::vector<std::pair<std::string, double>> values;
};
// What a task reports through. progress({...}) queues an event for the JS callback; check() (and
// each report) throws once that callback has thrown, so the task stops at its next step and the
// call's Promise rejects with the callback's own error. Long loops call check() every step.
class ProgressFn {
 public:
  ProgressFn(std::function<void(const ProgressEvent&)> send, const std::atomic<bool>* stop)
      : send_(std::move(send)), stop_(stop) {}
  void operator()(const ProgressEvent& event) const {
    check();
    send_(event);
  }
  void check() const;

 private:
  std::function<void(const ProgressEvent&)> send_;
  const std::atomic<bool>* stop_;
};

// The result is built on the JS thread from whatever the task captured.
using ResultFn = std::function<Napi::Value(Napi::Env)>;
using Task = std::function<ResultFn(const ProgressFn&)>;

// Runs `task` on the libuv pool and returns a Promise for its result. `keep_alive` holds the
// JS objects whose memory the task reads (typed arrays viewed without copies).
Napi::Promise run_async(Napi::Env env, Task task, Napi::Value on_progress, std::vector<Napi::Value> keep_alive,
                        const char* name);

}  // namespace addon
