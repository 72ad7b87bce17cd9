// GPU functors of the fused RMSProp ops: TensorFlow's types mapped onto the
// CUDA kernels of this folder. Compiled by nvcc with the CUDA toolkit's
// headers and none of TensorFlow's (see gpu_functors.h).

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/cuda/compact_kernel.cu.h"
#include "rmsprop_op/cc/kernels/cuda/cuda_common.cu.h"
#include "rmsprop_op/cc/kernels/cuda/dense_kernel.cu.h"
#include "rmsprop_op/cc/kernels/cuda/gpu_functors.h"
#include "rmsprop_op/cc/kernels/cuda/norms_kernel.cu.h"
#include "rmsprop_op/cc/kernels/cuda/sparse_compact_kernel.cu.h"
#include "rmsprop_op/cc/kernels/cuda/sparse_kernel.cu.h"

namespace rmsprop_op {
namespace {

using GPUDevice = Eigen::GpuDevice;
using gpu::CudaType;

DeviceStatus StatusOf(cudaError_t err, const char* step) {
  if (err == cudaSuccess) return {};
  return {step, cudaGetErrorString(err)};
}

class TensorFlowScratch : public gpu::ScratchAllocator {
 public:
  explicit TensorFlowScratch(const GPUDevice& d) : d_(d) {}
  void* Allocate(size_t bytes) override {
    void* buffer = GpuAllocate(d_, bytes);
    exhausted_ = buffer == nullptr;
    return buffer;
  }
  void Free(void* buffer) override { GpuDeallocate(d_, buffer); }
  bool exhausted() const { return exhausted_; }

 private:
  const GPUDevice& d_;
  bool exhausted_ = false;
};

template <typename T>
DeviceStatus ApplyDense(const GPUDevice& d, const DenseUpdate<T>* updates,
                        int num_updates, const HyperOf<T>& h, const ExtrasOf<T>* x) {
  const rmsprop_math::VariantChoice choice = updates[0].slots.Choice(x);
  return StatusOf(gpu::LaunchDenseApply<CudaType<T>>(GpuStream(d), updates, num_updates, h,
                                                     x != nullptr ? *x : ExtrasOf<T>{},
                                                     choice),
                  x != nullptr ? "the dense RMSProp update with extras"
                               : "the dense RMSProp update");
}

template <typename T>
DeviceStatus SquaredNormsOf(const GPUDevice& d, const T* const* grads,
                            const int64_t* sizes, int num_grads, double divisor,
                            double* out) {
  TensorFlowScratch scratch(d);
  const cudaError_t err = gpu::LaunchSquaredNorms<CudaType<T>>(
      GpuStream(d), &scratch, grads, sizes, num_grads, divisor, out);
  if (err == cudaErrorMemoryAllocation && scratch.exhausted()) {
    DeviceStatus status;
    status.out_of_memory = true;
    return status;
  }
  return StatusOf(err, "the gradients' squared norms");
}

template <typename T, typename Tindex>
DeviceStatus EnqueueSparse(const GPUDevice& d, const SlotPointers<T>& slots,
                           const T* grad, const Tindex* indices,
                           int64_t num_indices, int64_t num_rows,
                           int64_t row_size, const HyperOf<T>& h,
                           uint64_t* host_first_bad) {
  static_assert(sizeof(unsigned long long) == sizeof(uint64_t) &&
                gpu::kNoBadIndex == functor::kNoBadIndex);
  TensorFlowScratch scratch(d);
  const cudaError_t err = gpu::LaunchSparseApply<CudaType<T>>(
      GpuStream(d), &scratch, slots, grad, indices, num_indices, num_rows,
      row_size, h, reinterpret_cast<unsigned long long*>(host_first_bad));
  if (err == cudaErrorMemoryAllocation && scratch.exhausted()) {
    DeviceStatus status;
    status.out_of_memory = true;
    return status;
  }
  return StatusOf(err, "the sparse RMSProp update");
}

template <typename Tindex>
DeviceStatus EnqueueSparseCompact(const GPUDevice& d, const CompactUpdate& u,
                                  const Tindex* indices, int64_t num_indices,
                                  const rmsprop_math::Hyper<float>& h,
                                  uint64_t* host_first_bad) {
  TensorFlowScratch scratch(d);
  const cudaError_t err = gpu::LaunchSparseCompactApply<Tindex>(
      GpuStream(d), &scratch, u, indices, num_indices, h,
      reinterpret_cast<unsigned long long*>(host_first_bad));
  if (err == cudaErrorMemoryAllocation && scratch.exhausted()) {
    DeviceStatus status;
    status.out_of_memory = true;
    return status;
  }
  return StatusOf(err, "the sparse RMSProp update with compact state");
}

}  // namespace

namespace functor {

#define RMSPROP_DEFINE_GPU_SPARSE_FUNCTOR(T, Tindex)                         \
  template <>                                                                \
  DeviceStatus EnqueueSparseApplyRMSProp<T, Tindex>::operator()(             \
      const GPUDevice& d, const SlotPointers<T>& slots, const T* grad,       \
      const Tindex* indices, int64_t num_indices, int64_t num_rows,          \
      int64_t row_size, const HyperOf<T>& h, uint64_t* host_first_bad) {     \
    return EnqueueSparse<T, Tindex>(d, slots, grad, indices, num_indices,    \
                                    num_rows, row_size, h, host_first_bad);  \
  }

#define RMSPROP_DEFINE_GPU_FUNCTORS(T)                                       \
  template <>                                                                \
  DeviceStatus DenseApplyRMSProp<GPUDevice, T>::operator()(                  \
      const GPUDevice& d, const DenseUpdate<T>* updates, int num_updates,    \
      const HyperOf<T>& h, const ExtrasOf<T>* x) {                           \
    return ApplyDense<T>(d, updates, num_updates, h, x);                     \
  }                                                                          \
  RMSPROP_DEFINE_GPU_SPARSE_FUNCTOR(T, int32_t)                              \
  RMSPROP_DEFINE_GPU_SPARSE_FUNCTOR(T, int64_t)

RMSPROP_FOR_EACH_DTYPE(RMSPROP_DEFINE_GPU_FUNCTORS)
#undef RMSPROP_DEFINE_GPU_FUNCTORS

#define RMSPROP_DEFINE_GPU_NORMS_FUNCTOR(T)                                  \
  template <>                                                                \
  DeviceStatus SquaredNorms<GPUDevice, T>::operator()(                       \
      const GPUDevice& d, const T* const* grads, const int64_t* sizes,       \
      int num_grads, double divisor, double* out) {                          \
    return SquaredNormsOf<T>(d, grads, sizes, num_grads, divisor, out);      \
  }

RMSPROP_FOR_EACH_REAL_DTYPE(RMSPROP_DEFINE_GPU_NORMS_FUNCTOR)
#undef RMSPROP_DEFINE_GPU_NORMS_FUNCTOR

template <>
DeviceStatus DenseApplyCompactRMSProp<GPUDevice>::operator()(
    const GPUDevice& d, const CompactUpdate& u, const rmsprop_math::Hyper<float>& h,
    const rmsprop_math::Extras<float>* x) {
  return StatusOf(gpu::LaunchDenseCompactApply(GpuStream(d), u, h, x),
                  "the dense RMSProp update with compact state");
}

#define RMSPROP_DEFINE_GPU_SPARSE_COMPACT_FUNCTOR(Tindex)                    \
  template <>                                                                \
  DeviceStatus EnqueueSparseApplyCompactRMSProp<Tindex>::operator()(         \
      const GPUDevice& d, const CompactUpdate& u, const Tindex* indices,     \
      int64_t num_indices, const rmsprop_math::Hyper<float>& h,              \
      uint64_t* host_first_bad) {                                            \
    return EnqueueSparseCompact<Tindex>(d, u, indices, num_indices, h,       \
                                        host_first_bad);                     \
  }
RMSPROP_DEFINE_GPU_SPARSE_COMPACT_FUNCTOR(int32_t)
RMSPROP_DEFINE_GPU_SPARSE_COMPACT_FUNCTOR(int64_t)
#undef RMSPROP_DEFINE_GPU_SPARSE_COMPACT_FUNCTOR
#undef RMSPROP_DEFINE_GPU_SPARSE_FUNCTOR

}  // namespace functor
}  // namespace rmsprop_op
