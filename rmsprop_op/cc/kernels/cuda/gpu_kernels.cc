// GPU kernel registrations of the fused RMSProp ops, and the GPU's
// asynchronous sparse ops (float state and compact state).
//
// Built into a library of its own (_rmsprop_gpu_kernels.so), loaded after the
// op library and only where TensorFlow sees a GPU. This half is compiled by
// the host compiler with GOOGLE_CUDA and EIGEN_USE_GPU against TensorFlow's
// headers; the functors it calls live in gpu_functors.cu.cc.
#if !GOOGLE_CUDA || !defined(EIGEN_USE_GPU)
#error "build with -DGOOGLE_CUDA=1 -DEIGEN_USE_GPU"
#endif

#include <cstddef>
#include <cstdint>
#include <utility>

#include "rmsprop_op/cc/kernels/common/compact_format.h"
#include "rmsprop_op/cc/kernels/common/compact_op_kernels.h"
#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/kernel_registration.h"
#include "rmsprop_op/cc/kernels/common/op_kernels.h"
#include "rmsprop_op/cc/kernels/common/variable_access.h"
#include "rmsprop_op/cc/kernels/cuda/gpu_functors.h"
#include "tensorflow/core/common_runtime/device/device_event_mgr.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {

using GPUDevice = Eigen::GpuDevice;

// The CUDA half reinterprets Eigen's 16-bit types as CUDA's __half and
// __nv_bfloat16, which are bare 16-bit values too, and std::complex as
// rmsprop_math::Complex, a (real, imaginary) pair like it.
static_assert(sizeof(Eigen::half) == sizeof(uint16_t) &&
                  sizeof(Eigen::bfloat16) == sizeof(uint16_t),
              "Eigen's 16-bit floating-point types must be 16 bits");
static_assert(sizeof(::tensorflow::complex64) == sizeof(rmsprop_math::Complex<float>) &&
                  sizeof(::tensorflow::complex128) == sizeof(rmsprop_math::Complex<double>),
              "complex types must be (real, imaginary) pairs");

cudaStream_t GpuStream(const GPUDevice& d) { return d.stream(); }

void* GpuAllocate(const GPUDevice& d, size_t bytes) {
  return d.allocate(bytes);
}

void GpuDeallocate(const GPUDevice& d, void* buffer) { d.deallocate(buffer); }

template <>
void DeviceMemcpy<GPUDevice>(const GPUDevice& d, void* dst, const void* src,
                             size_t bytes) {
  d.memcpy(dst, src, bytes);  // asynchronous, on the op's stream
}

// Calls done() once the op's stream has run the work enqueued so far, with
// the op failed if the index check's answer (*first_bad, pinned host memory
// the stream writes) names a bad index.
inline void FinishWhenStreamDone(tensorflow::OpKernelContext* ctx,
                                 tensorflow::AsyncOpKernel::DoneCallback done,
                                 const tensorflow::Tensor& first_bad, int64_t num_rows) {
  auto finish = [ctx, done = std::move(done), first_bad, num_rows]() {
    const uint64_t bad = first_bad.scalar<tensorflow::uint64>()();
    if (bad != functor::kNoBadIndex) {
      ctx->SetStatus(BadIndexError(static_cast<int64_t>(bad), num_rows));
    }
    done();
  };
  ctx->device()->tensorflow_accelerator_device_info()->event_mgr->ThenExecute(
      ctx->op_device_context()->stream(), std::move(finish));
}

// The index check's answer: a pinned host scalar the stream writes.
inline absl::Status AllocateFirstBad(tensorflow::OpKernelContext* ctx,
                                     tensorflow::Tensor* first_bad) {
  tensorflow::AllocatorAttributes pinned;
  pinned.set_on_host(true);
  pinned.set_gpu_compatible(true);
  return ctx->allocate_temp(tensorflow::DT_UINT64, tensorflow::TensorShape({}), first_bad,
                            pinned);
}

// The sparse ops on a GPU: the update is enqueued whole (index check, row
// grouping, update) and the op finishes when the stream has copied the index
// check's answer to pinned host memory, through TensorFlow's event manager:
// no thread waits on the stream, and the variable locks are released once
// the work is enqueued, as the stream orders every later update after it.
// With a bad index the device writes nothing and the op fails.
template <typename Device, typename T, typename Tindex, bool kCentered>
class GpuSparseApplyRMSPropOp
    : public SingleVariableOpBase<Device, T, kCentered,
                                  tensorflow::AsyncOpKernel> {
 public:
  explicit GpuSparseApplyRMSPropOp(tensorflow::OpKernelConstruction* ctx)
      : SingleVariableOpBase<Device, T, kCentered, tensorflow::AsyncOpKernel>(
            ctx) {}

  void ComputeAsync(tensorflow::OpKernelContext* ctx,
                    tensorflow::AsyncOpKernel::DoneCallback done) override {
    HyperOf<T> h;
    SparseUpdate<T, Tindex> u;
    tensorflow::Tensor first_bad;
    bool enqueued = false;
    // done() only after the locks are released: a runner that calls the
    // next kernel from inside done() would otherwise wait on them forever.
    const absl::Status status = EnqueueLocked(ctx, &h, &u, &first_bad, &enqueued);
    if (!status.ok()) ctx->SetStatus(status);
    if (!enqueued) {
      done();
      return;
    }
    FinishWhenStreamDone(ctx, std::move(done), first_bad, u.num_rows);
  }

 private:
  // Validates and enqueues the update under the variable locks; *enqueued
  // says whether the stream has work whose answer the op must wait for.
  absl::Status EnqueueLocked(tensorflow::OpKernelContext* ctx, HyperOf<T>* h,
                             SparseUpdate<T, Tindex>* u,
                             tensorflow::Tensor* first_bad, bool* enqueued) {
    LockedVariables<Device> vars;
    TF_RETURN_IF_ERROR(this->PrepareSparse(ctx, h, &vars, u));
    if (u->num_indices == 0) return absl::OkStatus();
    TF_RETURN_IF_ERROR(AllocateFirstBad(ctx, first_bad));
    const DeviceStatus status = functor::EnqueueSparseApplyRMSProp<T, Tindex>()(
        ctx->eigen_device<Device>(), u->slots, u->grad, u->indices,
        u->num_indices, u->num_rows, u->row_size, *h,
        first_bad->scalar<tensorflow::uint64>().data());
    // Scratch exhaustion has already set the op's status.
    if (status.out_of_memory && !ctx->status().ok()) return ctx->status();
    if (!status.ok()) return DeviceError(status);
    *enqueued = true;
    return absl::OkStatus();
  }  // the variable locks are released here
};

#define RMSPROP_REGISTER_GPU(T)                                     \
  RMSPROP_REGISTER_KERNELS(GPUDevice, ::tensorflow::DEVICE_GPU, T, \
                           ::rmsprop_op::GpuSparseApplyRMSPropOp);

RMSPROP_FOR_EACH_DTYPE(RMSPROP_REGISTER_GPU)
#undef RMSPROP_REGISTER_GPU

// The sparse ops with compact state on a GPU, enqueued and finished as
// GpuSparseApplyRMSPropOp's: the index check, row grouping and block updates
// run on the stream, and with a bad index nothing is written.
template <typename Device, typename Tindex, bool kCentered>
class GpuSparseApplyCompactRMSPropOp
    : public CompactApplyOpBase<Device, kCentered, tensorflow::AsyncOpKernel> {
 public:
  explicit GpuSparseApplyCompactRMSPropOp(tensorflow::OpKernelConstruction* ctx)
      : CompactApplyOpBase<Device, kCentered, tensorflow::AsyncOpKernel>(ctx) {}

  void ComputeAsync(tensorflow::OpKernelContext* ctx,
                    tensorflow::AsyncOpKernel::DoneCallback done) override {
    tensorflow::Tensor first_bad;
    int64_t num_rows = 0;
    bool enqueued = false;
    // done() only after the locks are released (see GpuSparseApplyRMSPropOp).
    const absl::Status status = EnqueueLocked(ctx, &first_bad, &num_rows, &enqueued);
    if (!status.ok()) ctx->SetStatus(status);
    if (!enqueued) {
      done();
      return;
    }
    FinishWhenStreamDone(ctx, std::move(done), first_bad, num_rows);
  }

 private:
  absl::Status EnqueueLocked(tensorflow::OpKernelContext* ctx, tensorflow::Tensor* first_bad,
                             int64_t* num_rows, bool* enqueued) {
    rmsprop_math::Hyper<float> h;
    LockedVariables<Device> vars;
    CompactUpdate u;
    TF_RETURN_IF_ERROR(this->Prepare(ctx, /*sparse=*/true, &h, &vars, &u));
    const tensorflow::Tensor* indices;
    TF_RETURN_IF_ERROR(ctx->input("indices", &indices));
    if (indices->NumElements() == 0) return absl::OkStatus();
    TF_RETURN_IF_ERROR(AllocateFirstBad(ctx, first_bad));
    const DeviceStatus status = functor::EnqueueSparseApplyCompactRMSProp<Tindex>()(
        ctx->eigen_device<Device>(), u, indices->flat<Tindex>().data(),
        indices->NumElements(), h, first_bad->scalar<tensorflow::uint64>().data());
    // Scratch exhaustion has already set the op's status.
    if (status.out_of_memory && !ctx->status().ok()) return ctx->status();
    if (!status.ok()) return DeviceError(status);
    *num_rows = u.layout.rows;
    *enqueued = true;
    return absl::OkStatus();
  }  // the variable locks are released here
};

// Compact state: the dense and the sparse ops.
RMSPROP_REGISTER_COMPACT_DENSE_KERNELS(GPUDevice, ::tensorflow::DEVICE_GPU);
RMSPROP_REGISTER_COMPACT_SPARSE_KERNELS(GPUDevice, ::tensorflow::DEVICE_GPU, int32_t,
                                        ::rmsprop_op::GpuSparseApplyCompactRMSPropOp);
RMSPROP_REGISTER_COMPACT_SPARSE_KERNELS(GPUDevice, ::tensorflow::DEVICE_GPU, int64_t,
                                        ::rmsprop_op::GpuSparseApplyCompactRMSPropOp);

#define RMSPROP_REGISTER_NORMS_GPU(T) \
  RMSPROP_REGISTER_NORMS_KERNEL(GPUDevice, ::tensorflow::DEVICE_GPU, T)
RMSPROP_FOR_EACH_REAL_DTYPE(RMSPROP_REGISTER_NORMS_GPU)
#undef RMSPROP_REGISTER_NORMS_GPU

}  // namespace rmsprop_op

// Read back (as bytes of the file, without loading it) by rmsprop_op/_loader.py
// to tell a library built against another TensorFlow from a current one.
extern "C" __attribute__((visibility("default"), used)) const char
    rmsprop_op_gpu_build_stamp[] =
        "rmsprop_op built against TensorFlow " RMSPROP_OP_TF_VERSION
        "; rmsprop_op GPU kernels built for CUDA " RMSPROP_OP_CUDA_VERSION
        " (" RMSPROP_OP_CUDA_ARCHS ");";
