// The fused RMSProp ops inside XLA on a GPU: the XLA kernels registered for
// XLA's GPU device, and the CUDA handlers of their custom calls, which run
// the CUDA functors on the stream XLA gives them. Part of the GPU library;
// built where tools/tf_build_flags.py finds what it needs (RMSPROP_OP_XLA).
//
// XLA keeps every operand in device memory, the float64 scalars too, and
// the functors take them by value: each handler copies them to the host and
// waits for the stream (as a sparse update does for its index check).
#if !GOOGLE_CUDA || !defined(EIGEN_USE_GPU)
#error "build with -DGOOGLE_CUDA=1 -DEIGEN_USE_GPU"
#endif

#include "rmsprop_op/cc/kernels/xla/registration_state.h"

// Whether XLA can compile our ops here (read by rmsprop_op._loader).
RMSPROP_DEFINE_XLA_STATE(rmsprop_op_gpu_xla_kernels, "XLA_GPU_JIT")

#ifdef RMSPROP_OP_XLA
#include <cuda_runtime_api.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "rmsprop_op/cc/kernels/cuda/gpu_functors.h"
#include "rmsprop_op/cc/kernels/xla/ffi_handlers.h"
#include "rmsprop_op/cc/kernels/xla/xla_op_kernels.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {
namespace xla_kernels {
namespace {

// Eigen's view of XLA's stream, with the functors' scratch memory from XLA's
// allocator: released when the handler returns, ordered on the stream as
// TensorFlow's own temporaries are.
class XlaStreamDevice : public Eigen::GpuStreamDevice {
 public:
  XlaStreamDevice(const cudaStream_t* stream, ffi::ScratchAllocator scratch)
      : Eigen::GpuStreamDevice(stream), scratch_(std::move(scratch)) {}
  void* allocate(size_t num_bytes) const override {
    return scratch_.Allocate(num_bytes, 256).value_or(nullptr);
  }
  void deallocate(void*) const override {}

 private:
  mutable ffi::ScratchAllocator scratch_;
};

class CudaBackend {
 public:
  using Device = Eigen::GpuDevice;
  CudaBackend(cudaStream_t stream, ffi::ScratchAllocator scratch)
      : stream_(stream), stream_device_(&stream_, std::move(scratch)), device_(&stream_device_) {}
  const Device& device() const { return device_; }

  // The scalars XLA keeps on the device, on the host once the stream reaches them.
  void ReadDoubles(const void* src, double* out, size_t n) {
    if (n == 0) return;
    Check(cudaMemcpyAsync(out, src, n * sizeof(double), cudaMemcpyDeviceToHost, stream_),
          "copying the hyperparameters to the host");
    Check(cudaStreamSynchronize(stream_), "waiting for the hyperparameters");
    if (failed_step_ != nullptr) {
      for (size_t i = 0; i < n; ++i) out[i] = std::numeric_limits<double>::quiet_NaN();
    }
  }
  void Copy(void* dst, const void* src, size_t bytes) {
    Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
          "copying a variable");
  }
  void Check(cudaError_t error, const char* step) {
    if (error != cudaSuccess && failed_step_ == nullptr) {
      failed_step_ = step;
      message_ = cudaGetErrorString(error);
    }
  }
  ffi::Error Failure() const {
    if (failed_step_ == nullptr) return ffi::Error::Success();
    return ffi::Error::Internal(std::string("CUDA error in ") + failed_step_ + ": " + message_);
  }
  cudaStream_t stream() const { return stream_; }

 private:
  cudaStream_t stream_;
  XlaStreamDevice stream_device_;
  Eigen::GpuDevice device_;
  const char* failed_step_ = nullptr;
  std::string message_;
};

ffi::Error ApplyCuda(cudaStream_t stream, ffi::ScratchAllocator scratch, int64_t num_vars,
                     int64_t centered, int64_t momentum, int64_t ema, int64_t grouped,
                     int64_t epsilon_after_sqrt, int64_t apply_weight_decay,
                     ffi::RemainingArgs args, ffi::RemainingRets rets) {
  Buffers b;
  if (ffi::Error e = Decode(args, rets, &b); e.failure()) return e;
  CudaBackend backend(stream, std::move(scratch));
  return Finish(backend, Apply(backend,
                               LayoutOf(num_vars, centered, momentum, ema, grouped,
                                        epsilon_after_sqrt, apply_weight_decay),
                               b));
}

// A sparse update is enqueued whole; its index check's answer arrives on the
// host when the stream reaches it. With a bad index nothing was written.
ffi::Error SparseApplyCuda(cudaStream_t stream, ffi::ScratchAllocator scratch, int64_t num_vars,
                           int64_t centered, int64_t momentum, int64_t ema, int64_t grouped,
                           int64_t epsilon_after_sqrt, int64_t apply_weight_decay,
                           ffi::RemainingArgs args, ffi::RemainingRets rets) {
  Buffers b;
  if (ffi::Error e = Decode(args, rets, &b); e.failure()) return e;
  CudaBackend backend(stream, std::move(scratch));
  const CallLayout layout = LayoutOf(num_vars, centered, momentum, ema, grouped,
                                     epsilon_after_sqrt, apply_weight_decay);
  return Finish(backend, SparseApply(backend, layout, b, [&](const auto& call,
                                                             const auto* indices) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(call.grad)>>;
    using Tindex = std::remove_const_t<std::remove_pointer_t<decltype(indices)>>;
    uint64_t first_bad = functor::kNoBadIndex;
    const DeviceStatus done = functor::EnqueueSparseApplyRMSProp<T, Tindex>()(
        backend.device(), call.slots, call.grad, indices, call.num_indices, call.num_rows,
        call.row_size, call.h, &first_bad);
    if (!done.ok()) return ToFfiError(DeviceError(done));
    backend.Check(cudaStreamSynchronize(stream), "waiting for the index check");
    if (ffi::Error e = backend.Failure(); e.failure()) return e;
    return ToFfiError(first_bad == functor::kNoBadIndex
                          ? absl::OkStatus()
                          : BadIndexError(static_cast<int64_t>(first_bad), call.num_rows));
  }));
}

ffi::Error SquaredNormsCuda(cudaStream_t stream, ffi::ScratchAllocator scratch,
                            ffi::RemainingArgs args, ffi::RemainingRets rets) {
  Buffers b;
  if (ffi::Error e = Decode(args, rets, &b); e.failure()) return e;
  CudaBackend backend(stream, std::move(scratch));
  return Finish(backend, SquaredNorms(backend, b));
}

auto BindCuda() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::PlatformStream<cudaStream_t>>()
      .Ctx<ffi::ScratchAllocator>();
}

XLA_FFI_DEFINE_HANDLER(kApplyCuda, ApplyCuda, BindUpdate(BindCuda()));
XLA_FFI_DEFINE_HANDLER(kSparseApplyCuda, SparseApplyCuda, BindUpdate(BindCuda()));
XLA_FFI_DEFINE_HANDLER(kSquaredNormsCuda, SquaredNormsCuda,
                       BindCuda().RemainingArgs().RemainingRets());

}  // namespace

XLA_FFI_REGISTER_HANDLER(::xla::ffi::GetXlaFfiApi(), kApplyTarget, "CUDA", kApplyCuda);
XLA_FFI_REGISTER_HANDLER(::xla::ffi::GetXlaFfiApi(), kSparseApplyTarget, "CUDA",
                         kSparseApplyCuda);
XLA_FFI_REGISTER_HANDLER(::xla::ffi::GetXlaFfiApi(), kSquaredNormsTarget, "CUDA",
                         kSquaredNormsCuda);

}  // namespace xla_kernels
}  // namespace rmsprop_op

namespace tensorflow {
RMSPROP_REGISTER_XLA_KERNELS(DEVICE_GPU_XLA_JIT);
}  // namespace tensorflow

#endif  // RMSPROP_OP_XLA
