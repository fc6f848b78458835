// Data-parallel communication on LibTorch's c10d: a TCPStore rendezvous (rank 0 hosts it) and one
// process group, Gloo on CPU or NCCL on CUDA builds that have it. Independent of Node.
//
// c10d's rules, which this class keeps: every rank issues the same collectives in the same order;
// collectives are issued one at a time (1.13's tag counter is unlocked), so all of them go through
// one lock; the store and process-group constructors block until every rank has joined, so
// create() blocks too (call it off the JS thread) and gives up after the timeout.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dist {

enum class Backend { Gloo, Nccl };
enum class ReduceOp { Sum, Mean, Min, Max };

Backend parse_backend(const std::string& name);
ReduceOp parse_reduce_op(const std::string& name);
const char* to_string(Backend backend);

// What this build can do: a backend is compiled in, or `*_missing` says why not.
struct Availability {
  bool gloo = false, nccl = false;
  std::string gloo_missing, nccl_missing;
};
Availability availability();

struct GroupOptions {
  Backend backend = Backend::Gloo;
  int rank = 0, world_size = 1;
  int local_rank = 0;  // NCCL: the CUDA device of this rank
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::milliseconds timeout{300000};
  // Gloo: the network interface to use (GLOO_SOCKET_IFNAME); empty: the local address that
  // routes to master_addr.
  std::string interface;
};

// Collective time spent by this rank, for benchmarks and logs.
struct GroupStats {
  int64_t collectives = 0;
  double seconds = 0;
};

class ProcessGroup {
 public:
  // Blocks until every rank has joined; throws EngineError ERR_DISTRIBUTED_TIMEOUT when one has
  // not within the timeout, ERR_DISTRIBUTED_PORT_IN_USE when rank 0 cannot listen on the port,
  // ERR_DISTRIBUTED_UNAVAILABLE when the backend is not compiled in, ERR_DISTRIBUTED otherwise.
  static std::shared_ptr<ProcessGroup> create(const GroupOptions& options);
  ~ProcessGroup();

  const GroupOptions& options() const { return options_; }
  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  // Where collective buffers live: the CPU for Gloo, cuda:local_rank for NCCL.
  c10::Device device() const;

  // In place, on every tensor in turn (issued together, then waited for). Tensors on another
  // device than device() are staged through a buffer there.
  void all_reduce(const std::vector<at::Tensor>& tensors, ReduceOp op);
  void broadcast(const at::Tensor& tensor, int root);
  void barrier();

  GroupStats stats() const;
  // Frees the process group; later collectives throw ERR_DISTRIBUTED.
  void destroy();

 private:
  struct Impl;
  explicit ProcessGroup(const GroupOptions& options);
  // Runs `body` under the collective lock, timing it and mapping c10d's errors.
  template <typename F>
  void collective(const char* what, F&& body);

  GroupOptions options_;
  std::unique_ptr<Impl> impl_;
  mutable std::mutex mutex_;
  GroupStats stats_;
};

// Averages the gradients (.grad) of `params` across the ranks of `group`, in flat buckets of at
// most `bucket_bytes` each: one all-reduce per bucket instead of one per tensor. A parameter
// without a gradient counts as a zero gradient (every rank then holds one).
class GradientAverager {
 public:
  GradientAverager(std::shared_ptr<ProcessGroup> group, int64_t bucket_bytes);
  void operator()(const std::vector<std::pair<std::string, at::Tensor>>& params);

 private:
  std::shared_ptr<ProcessGroup> group_;
  int64_t bucket_bytes_;
  std::vector<at::Tensor> buckets_;  // kept from step to step
};

}  // namespace dist
