// Backend information, threads, devices, tensor round trips and the device self-test.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include <chrono>

#include "bnn/conv_kernels.h"
#include "common.h"
#include "registry.h"
#include "sde/activations.h"
#include "sde/cuda_math.h"
#include "sde/device.h"
#include "sde/errors.h"

namespace addon {
namespace {

// A struct to an object, field by field (as distributed.cc's availability()).
Napi::Value backend(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const sde::BackendInfo b = sde::backend_info();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("torchVersion", b.torch_version);
    o.Set("cudaAvailable", b.cuda_available);
    o.Set("cudaDeviceCount", b.cuda_device_count);
    o.Set("threads", b.num_threads);
    o.Set("interopThreads", b.num_interop_threads);
    return o;
  });
}

Napi::Value set_num_threads(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    sde::set_num_threads(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  });
}

// setCudaMathMode({tf32Matmul, tf32Conv, autocastBf16}) and cudaMathMode(): lib/gpu.ts checks the arguments.
Napi::Value set_cuda_math_mode(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Napi::Object o = info[0].As<Napi::Object>();
    sde::set_cuda_math_mode(
        sde::CudaMathMode{get_bool(o, "tf32Matmul"), get_bool(o, "tf32Conv"), get_bool(o, "autocastBf16")});
    return info.Env().Undefined();
  });
}

Napi::Value cuda_math_mode(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const sde::CudaMathMode m = sde::cuda_math_mode();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("tf32Matmul", m.tf32_matmul);
    o.Set("tf32Conv", m.tf32_conv);
    o.Set("autocastBf16", m.autocast_bf16);
    return o;
  });
}

// cudaMemoryStats(device, resetPeak): bytes as numbers (exact below 2^53).
Napi::Value cuda_memory_stats(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const sde::CudaMemoryStats m = sde::cuda_memory_stats(sde::resolve_device(info[0].As<Napi::String>().Utf8Value()),
                                                          info[1].As<Napi::Boolean>().Value());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("allocatedBytes", static_cast<double>(m.allocated_bytes));
    o.Set("peakAllocatedBytes", static_cast<double>(m.peak_allocated_bytes));
    o.Set("reservedBytes", static_cast<double>(m.reserved_bytes));
    return o;
  });
}

Napi::Value resolve_device(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), sde::resolve_device(info[0].As<Napi::String>().Utf8Value()).str());
  });
}

// roundTrip(tensor, {transpose, scale, dtype, device}): marshals a tensor in and out, with an
// optional transpose (a non-contiguous result) and scale, on the given device.
Napi::Value round_trip(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    at::Tensor t = tensor_from_js(info[0], "tensor");
    Napi::Object opts = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(info.Env());
    // a test hook: every option may be left out
    if (opts.Get("device").IsString()) t = t.to(sde::resolve_device(get_string(opts, "device")));
    if (opts.Get("transpose").IsBoolean() && get_bool(opts, "transpose") && t.dim() >= 2) t = t.transpose(0, 1);
    const double scale = opts.Get("scale").IsNumber() ? get_number(opts, "scale") : 1.0;
    if (scale != 1.0) t = t * scale;
    return tensor_to_js(info.Env(), t);
  });
}

// An activation's value and slope by one of the engine's kernels ('fast': sde::activate_cpu, the
// buffered route's loops; 'conv': the conv kernels' softplus and their slope from the output)
// or by LibTorch itself ('aten': the ATen op, its slope by autograd), for a contiguous CPU tensor.
std::pair<at::Tensor, at::Tensor> activation_by(const std::string& route, sde::Activation act, const at::Tensor& z) {
  at::Tensor value = at::empty_like(z), slope = at::empty_like(z);
  if (route == "fast") {
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "fast_activation", [&] {
      sde::activate_cpu(act, z.numel(), z.data_ptr<scalar_t>(), value.data_ptr<scalar_t>(), slope.data_ptr<scalar_t>());
    });
  } else if (route == "conv") {
    const int64_t n = z.numel();
    AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "conv_activation", [&] {
      const at::Tensor ones = at::ones_like(z);
      const scalar_t* zr = z.data_ptr<scalar_t>();
      scalar_t* vr = value.data_ptr<scalar_t>();
      scalar_t* sr = slope.data_ptr<scalar_t>();
      const scalar_t* one = ones.data_ptr<scalar_t>();
      if (act == sde::Activation::Softplus) {
        bnn::conv::softplus_masked(1, &zr, one, &vr, n);
      } else {
        sde::activate_into(act, value, z);  // as ConvDynamics computes it
      }
      const scalar_t* vc = vr;
      scalar_t db = 0;
      bnn::conv::slope_product(act, 1, &vc, &one, one, &sr, &db, n);
    });
  } else if (route == "aten") {
    const at::Tensor x = z.detach().clone().requires_grad_(true);
    const at::Tensor y = sde::activate(act, x);
    value = y.detach();
    slope = torch::autograd::grad({y}, {x}, {at::ones_like(y)})[0];
  } else {
    throw sde::invalid_argument("Expected 'fast', 'conv' or 'aten' for the route but received '" + route + "'");
  }
  return {value, slope};
}

// elementwise(tensor, name): the engine's own elementwise kernels applied to a tensor, so that
// tests can hold them to a reference: 'tanh' (sde::tanh_into) gives its value; '<route>.<act>'
// (route 'fast', 'conv' or 'aten'; act 'tanh', 'softplus', 'relu', 'sigmoid') gives {value, slope}.
Napi::Value elementwise(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const at::Tensor t = tensor_from_js(info[0], "tensor").contiguous();
    const std::string name = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    if (name == "tanh") {
      at::Tensor out = at::empty_like(t);
      sde::tanh_into(t, out);
      return tensor_to_js(info.Env(), out);
    }
    const size_t dot = name.find('.');
    if (dot == std::string::npos)
      throw sde::invalid_argument("Expected 'tanh' for name but received '" + name + "' (or '<route>.<activation>')");
    const auto [value, slope] = activation_by(name.substr(0, dot), sde::parse_activation(name.substr(dot + 1)), t);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("value", tensor_to_js(info.Env(), value));
    out.Set("slope", tensor_to_js(info.Env(), slope));
    return out;
  });
}

// selfTest({device, size, iterations}, onProgress): matrix products on the device, checked
// against a known answer, reported per iteration. The first Promise-returning operation and the
// template for all long work.
Napi::Value self_test(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Object opts = info[0].As<Napi::Object>();
    const c10::Device device = sde::resolve_device(get_string(opts, "device"));
    const int64_t size = static_cast<int64_t>(get_number(opts, "size"));
    const int64_t iterations = static_cast<int64_t>(get_number(opts, "iterations"));
    Task task = [device, size, iterations](const ProgressFn& progress) -> ResultFn {
      at::manual_seed(0);
      auto options = at::TensorOptions().dtype(at::kFloat).device(device);
      at::Tensor a = at::randn({size, size}, options);
      at::Tensor q = std::get<0>(at::linalg_qr(at::randn({size, size}, options)));  // orthogonal
      double max_error = 0.0;
      const auto start = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < iterations; ++i) {
        // (a q) q^T = a for orthogonal q.
        at::Tensor back = at::matmul(at::matmul(a, q), q.t());
        max_error = std::max(max_error, (back - a).abs().max().item<double>());
        progress({"matmul", {{"iteration", static_cast<double>(i + 1)}, {"total", static_cast<double>(iterations)}}});
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double gflops = iterations * 2.0 * 2.0 * size * size * size / std::max(seconds, 1e-9) / 1e9;
      const std::string device_name = device.str();
      const int threads = at::get_num_threads();  // as this worker thread ran the products
      return [=](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("device", device_name);
        o.Set("iterations", static_cast<double>(iterations));
        o.Set("seconds", seconds);
        o.Set("gflops", gflops);
        o.Set("maxAbsError", max_error);
        o.Set("threads", threads);
        return o;
      };
    };
    return run_async(info.Env(), std::move(task), info[1], {}, "sdebnn.selfTest");
  });
}

// Raises each kind of native failure, so tests can check how it reaches JavaScript.
Napi::Value raise(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const std::string kind = info[0].As<Napi::String>().Utf8Value();
    if (kind == "torch") {
      // A genuine LibTorch error: shapes that cannot be multiplied.
      at::matmul(at::zeros({2, 3}), at::zeros({4, 5}));
    } else if (kind == "std") {
      throw std::runtime_error("a standard exception from native code");
    }
    throw sde::invalid_argument("unknown failure kind '" + kind + "'");
  });
}

}  // namespace

void register_core(Napi::Env env, Napi::Object exports) {
  exports.Set("backend", Napi::Function::New(env, backend, "backend"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_num_threads, "setNumThreads"));
  exports.Set("resolveDevice", Napi::Function::New(env, resolve_device, "resolveDevice"));
  exports.Set("setCudaMathMode", Napi::Function::New(env, set_cuda_math_mode, "setCudaMathMode"));
  exports.Set("cudaMathMode", Napi::Function::New(env, cuda_math_mode, "cudaMathMode"));
  exports.Set("cudaMemoryStats", Napi::Function::New(env, cuda_memory_stats, "cudaMemoryStats"));
  exports.Set("roundTrip", Napi::Function::New(env, round_trip, "roundTrip"));
  exports.Set("selfTest", Napi::Function::New(env, self_test, "selfTest"));
  exports.Set("elementwise", Napi::Function::New(env, elementwise, "elementwise"));
  exports.Set("raise", Napi::Function::New(env, raise, "raise"));
}

}  // namespace addon
