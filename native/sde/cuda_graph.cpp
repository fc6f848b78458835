#include "sde/cuda_graph.h"

#include <torch/version.h>

#include <string>

#include "sde/errors.h"

#if SDEBNN_HAVE_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace sde {

#if SDEBNN_HAVE_CUDA

struct CudaGraph::Impl {
  Impl(c10::Device d, c10::cuda::CUDAStream s) : device(d), side(s) {}
  c10::Device device;
  c10::cuda::CUDAStream side;
  at::cuda::CUDAGraph graph;
  bool captured = false;
};

CudaGraph::CudaGraph(const c10::Device& device) {
  if (!device.is_cuda())
    throw invalid_argument("Expected a CUDA device for a CUDA graph but received '" + device.str() + "'");
  const c10::DeviceIndex index = device.has_index() ? device.index() : 0;
  impl_ = std::make_unique<Impl>(c10::Device(c10::kCUDA, index), c10::cuda::getStreamFromPool(false, index));
}

CudaGraph::~CudaGraph() = default;

namespace {
// `waiter` waits (on the device) for the work queued on `stream` so far.
void order_after(const c10::cuda::CUDAStream& stream, const c10::cuda::CUDAStream& waiter) {
  c10::Event event(c10::DeviceType::CUDA);
  event.record(stream);
  event.block(waiter);
}
}  // namespace

void CudaGraph::warm_up(const std::function<void()>& fn) {
  c10::cuda::CUDAGuard device_guard(impl_->device);
  const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(impl_->device.index());
  order_after(current, impl_->side);
  {
    c10::cuda::CUDAStreamGuard stream_guard(impl_->side);
    fn();
  }
  order_after(impl_->side, current);
}

void CudaGraph::capture(const std::function<void()>& fn) {
  if (impl_->captured) throw std::logic_error("CudaGraph::capture: already captured");
  c10::cuda::CUDAGuard device_guard(impl_->device);
  // Once per graph: nothing queued may still read memory that the capture's allocations reuse.
  c10::cuda::device_synchronize();
  c10::cuda::CUDAStreamGuard stream_guard(impl_->side);
  impl_->graph.capture_begin();
  try {
    fn();
  } catch (...) {
    try {
      impl_->graph.capture_end();  // leaves the stream out of capture mode; the graph is discarded
    } catch (...) {
    }
    throw;
  }
  impl_->graph.capture_end();
  impl_->captured = true;
}

void CudaGraph::replay() {
  if (!impl_->captured) throw std::logic_error("CudaGraph::replay: nothing captured");
  c10::cuda::CUDAGuard device_guard(impl_->device);
  impl_->graph.replay();
}

#else

struct CudaGraph::Impl {};

CudaGraph::CudaGraph(const c10::Device&) {
  throw EngineError("ERR_DEVICE_UNAVAILABLE", std::string("CUDA graphs need a CUDA build of sdebnn; this LibTorch (") +
                                                  TORCH_VERSION + ") has none");
}
CudaGraph::~CudaGraph() = default;
void CudaGraph::warm_up(const std::function<void()>&) {}
void CudaGraph::capture(const std::function<void()>&) {}
void CudaGraph::replay() {}

#endif

}  // namespace sde
