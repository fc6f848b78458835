// Data-parallel training for JavaScript: a process group (native/dist) whose joining and
// collectives run off the JS thread and return Promises, and the gradient hook it sets on a
// model. Marshalling only: lib/distributed.ts validates and orders the calls.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <memory>
#include <mutex>

#include "bnn.h"
#include "common.h"
#include "dist/process_group.h"
#include "registry.h"
#include "sde/errors.h"

namespace addon {
namespace {

// The group, shared with the tasks that create and use it.
struct GroupSlot {
  std::mutex mutex;
  std::shared_ptr<dist::ProcessGroup> group;
};

class ProcessGroupHandle : public Napi::ObjectWrap<ProcessGroupHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(
        env, "ProcessGroup",
        {InstanceMethod("init", &ProcessGroupHandle::init),
         InstanceMethod("allReduce", &ProcessGroupHandle::all_reduce),
         InstanceMethod("broadcast", &ProcessGroupHandle::broadcast),
         InstanceMethod("barrier", &ProcessGroupHandle::barrier),
         InstanceMethod("attachGradients", &ProcessGroupHandle::attach_gradients),
         InstanceMethod("detachGradients", &ProcessGroupHandle::detach_gradients),
         InstanceMethod("stats", &ProcessGroupHandle::stats), InstanceMethod("destroy", &ProcessGroupHandle::destroy)});
  }

  explicit ProcessGroupHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupHandle>(info) {}

 private:
  std::shared_ptr<dist::ProcessGroup> group(Napi::Env env) const {
    std::lock_guard<std::mutex> lock(slot_->mutex);
    if (!slot_->group)
      throw make_error(env, "ERR_DISTRIBUTED", "the process group is not initialised, or was destroyed");
    return slot_->group;
  }

  // init({backend, rank, worldSize, localRank, masterAddr, masterPort, timeoutMs, interface}):
  // joins in the thread pool (the constructors block until every rank has joined).
  Napi::Value init(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      Napi::Object o = info[0].As<Napi::Object>();
      dist::GroupOptions options;
      options.backend = dist::parse_backend(get_string(o, "backend"));
      options.rank = static_cast<int>(get_number(o, "rank"));
      options.world_size = static_cast<int>(get_number(o, "worldSize"));
      options.local_rank = static_cast<int>(get_number(o, "localRank"));
      options.master_addr = get_string(o, "masterAddr");
      options.master_port = static_cast<int>(get_number(o, "masterPort"));
      options.timeout = std::chrono::milliseconds(static_cast<int64_t>(get_number(o, "timeoutMs")));
      options.interface = get_string(o, "interface");
      auto slot = slot_;
      Task task = [slot, options](const ProgressFn&) -> ResultFn {
        auto group = dist::ProcessGroup::create(options);
        std::lock_guard<std::mutex> lock(slot->mutex);
        slot->group = std::move(group);
        return nullptr;
      };
      return run_async(info.Env(), std::move(task), info.Env().Undefined(), {}, "sdebnn.initDistributed");
    });
  }

  // allReduce(tensor, op): in place on the tensor's memory.
  Napi::Value all_reduce(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      auto g = group(info.Env());
      const at::Tensor t = tensor_from_js(info[0], "tensor");
      const dist::ReduceOp op = dist::parse_reduce_op(info[1].As<Napi::String>().Utf8Value());
      Task task = [g, t, op](const ProgressFn&) -> ResultFn {
        g->all_reduce({t}, op);
        return nullptr;
      };
      return run_async(info.Env(), std::move(task), info.Env().Undefined(), keep(info[0]), "sdebnn.allReduce");
    });
  }

  // broadcast(tensor, root): in place.
  Napi::Value broadcast(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      auto g = group(info.Env());
      const at::Tensor t = tensor_from_js(info[0], "tensor");
      const int root = info[1].As<Napi::Number>().Int32Value();
      Task task = [g, t, root](const ProgressFn&) -> ResultFn {
        g->broadcast(t, root);
        return nullptr;
      };
      return run_async(info.Env(), std::move(task), info.Env().Undefined(), keep(info[0]), "sdebnn.broadcast");
    });
  }

  Napi::Value barrier(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      auto g = group(info.Env());
      Task task = [g](const ProgressFn&) -> ResultFn {
        g->barrier();
        return nullptr;
      };
      return run_async(info.Env(), std::move(task), info.Env().Undefined(), {}, "sdebnn.barrier");
    });
  }

  // attachGradients(nativeModel, bucketBytes): until detachGradients, each of the model's training
  // steps averages its gradients across the ranks before clipping and Adam. One averager per
  // group, so that its buckets serve step after step.
  Napi::Value attach_gradients(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      auto g = group(info.Env());
      auto model = share_idle_bnn_model(info[0]);
      if (!averager_)
        averager_ =
            std::make_shared<dist::GradientAverager>(g, static_cast<int64_t>(info[1].As<Napi::Number>().Int64Value()));
      auto averager = averager_;
      model->set_gradient_hook([averager](const bnn::NamedTensors& params) { (*averager)(params); });
      return info.Env().Undefined();
    });
  }

  Napi::Value detach_gradients(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      share_idle_bnn_model(info[0])->set_gradient_hook(nullptr);
      return info.Env().Undefined();
    });
  }

  Napi::Value stats(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      const dist::GroupStats s = group(info.Env())->stats();
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("collectives", static_cast<double>(s.collectives));
      o.Set("seconds", s.seconds);
      return o;
    });
  }

  Napi::Value destroy(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      std::shared_ptr<dist::ProcessGroup> g;
      {
        std::lock_guard<std::mutex> lock(slot_->mutex);
        g = std::move(slot_->group);
      }
      if (g) g->destroy();
      averager_.reset();
      return info.Env().Undefined();
    });
  }

  static std::vector<Napi::Value> keep(const Napi::Value& tensor) {
    std::vector<Napi::Value> out{tensor};
    if (tensor.IsObject()) out.push_back(tensor.As<Napi::Object>().Get("data"));
    return out;
  }

  std::shared_ptr<GroupSlot> slot_ = std::make_shared<GroupSlot>();
  std::shared_ptr<dist::GradientAverager> averager_;
};

// What this build can do: {gloo, nccl, glooMissing, ncclMissing}.
Napi::Value availability(const Napi::CallbackInfo& info) {
  const dist::Availability a = dist::availability();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("gloo", a.gloo);
  o.Set("nccl", a.nccl);
  o.Set("glooMissing", a.gloo_missing);
  o.Set("ncclMissing", a.nccl_missing);
  return o;
}

// The state of the model's training stream (its 'rng.train' tensor) as seeded with `seed`: each
// rank's own weight paths when they are independent.
Napi::Value train_stream_state(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const double seed = info[0].As<Napi::Number>().DoubleValue();
    if (!(seed >= 0 && seed <= 9007199254740991.0)) throw sde::invalid_argument("trainStreamState: seed out of range");
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
    return tensor_to_js(info.Env(), gen.get_state().to(at::kDouble));
  });
}

}  // namespace

void register_distributed(Napi::Env env, Napi::Object exports) {
  exports.Set("ProcessGroup", ProcessGroupHandle::define(env));
  exports.Set("distributedAvailability", Napi::Function::New(env, availability, "distributedAvailability"));
  exports.Set("trainStreamState", Napi::Function::New(env, train_stream_state, "trainStreamState"));
}

}  // namespace addon
