// CUDA graphs (LibTorch's at::cuda::CUDAGraph): a step's device work recorded once and replayed
// with one launch, for fixed-step solves, which are launch-bound on a GPU when the model is small.
// Warm-up and capture run on a side stream (CUDA captures only off the default stream, and an
// eager run there first keeps cuBLAS's and cuDNN's lazy set-up out of the graph); replays run on
// the current stream. A LibTorch without CUDA: ERR_DEVICE_UNAVAILABLE, never a silent eager run.
#pragma once
#include <c10/core/Device.h>

#include <functional>
#include <memory>

namespace sde {

class CudaGraph {
 public:
  explicit CudaGraph(const c10::Device& device);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Runs fn eagerly on the side stream, ordered after the current stream's work and before its later work.
  void warm_up(const std::function<void()>& fn);
  // Records fn's device work without running it: fn's host code runs once, now, and must neither
  // wait for the device nor copy from pageable host memory. Tensors fn leaves alive (outputs,
  // .grad) keep the graph's memory; replay() writes into them again.
  void capture(const std::function<void()>& fn);
  // Runs the recorded work on the current stream.
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sde
