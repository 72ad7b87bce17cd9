// The GPU specializations of the device functors (common/functors.h).
//
// The GPU library is built in two halves: gpu_functors.cu.cc, compiled by
// nvcc without TensorFlow's headers, defines the functors, and
// gpu_kernels.cc, compiled by the host compiler against TensorFlow,
// registers the kernels that call them. This header is all the two share.
// Eigen's GpuDevice is only named here: its full definition depends on the
// CUDA headers TensorFlow was built with, so only the host half reads it and
// hands the CUDA half the three things it needs, below.
#ifndef RMSPROP_OP_CC_KERNELS_CUDA_GPU_FUNCTORS_H_
#define RMSPROP_OP_CC_KERNELS_CUDA_GPU_FUNCTORS_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "rmsprop_op/cc/kernels/common/compact_functors.h"
#include "rmsprop_op/cc/kernels/common/functors.h"

namespace Eigen {
struct GpuDevice;
}  // namespace Eigen

namespace rmsprop_op {

// The op's compute stream.
cudaStream_t GpuStream(const Eigen::GpuDevice& d);
// Scratch memory from TensorFlow's allocator, ordered on the op's stream: a
// buffer may be freed once the work using it is enqueued. Null when memory is
// exhausted; the op's status then says so.
void* GpuAllocate(const Eigen::GpuDevice& d, size_t bytes);
void GpuDeallocate(const Eigen::GpuDevice& d, void* buffer);

namespace functor {

// Where a sparse update on a GPU leaves its answer.
constexpr uint64_t kNoBadIndex = ~uint64_t{0};

// The sparse update of SparseApplyRMSProp (common/functors.h), enqueued on
// the op's stream without waiting: when the stream reaches its end,
// *host_first_bad (pinned host memory) holds kNoBadIndex or, with nothing
// written, the position of the first index outside [0, num_rows).
template <typename T, typename Tindex>
struct EnqueueSparseApplyRMSProp {
  DeviceStatus operator()(const Eigen::GpuDevice& d,
                          const SlotPointers<T>& slots, const T* grad,
                          const Tindex* indices, int64_t num_indices,
                          int64_t num_rows, int64_t row_size,
                          const HyperOf<T>& h, uint64_t* host_first_bad);
};

#define RMSPROP_DECLARE_GPU_SPARSE_FUNCTOR(T, Tindex)                       \
  template <>                                                               \
  DeviceStatus EnqueueSparseApplyRMSProp<T, Tindex>::operator()(            \
      const Eigen::GpuDevice& d, const SlotPointers<T>& slots,              \
      const T* grad, const Tindex* indices, int64_t num_indices,            \
      int64_t num_rows, int64_t row_size, const HyperOf<T>& h,              \
      uint64_t* host_first_bad)

#define RMSPROP_DECLARE_GPU_FUNCTORS(T)                                     \
  template <>                                                               \
  DeviceStatus DenseApplyRMSProp<Eigen::GpuDevice, T>::operator()(          \
      const Eigen::GpuDevice& d, const DenseUpdate<T>* updates,             \
      int num_updates, const HyperOf<T>& h, const ExtrasOf<T>* x);          \
  RMSPROP_DECLARE_GPU_SPARSE_FUNCTOR(T, int32_t);                           \
  RMSPROP_DECLARE_GPU_SPARSE_FUNCTOR(T, int64_t);

RMSPROP_FOR_EACH_DTYPE(RMSPROP_DECLARE_GPU_FUNCTORS)
#undef RMSPROP_DECLARE_GPU_FUNCTORS

#define RMSPROP_DECLARE_GPU_NORMS_FUNCTOR(T)                                \
  template <>                                                               \
  DeviceStatus SquaredNorms<Eigen::GpuDevice, T>::operator()(               \
      const Eigen::GpuDevice& d, const T* const* grads,                     \
      const int64_t* sizes, int num_grads, double divisor, double* out);

RMSPROP_FOR_EACH_REAL_DTYPE(RMSPROP_DECLARE_GPU_NORMS_FUNCTOR)
#undef RMSPROP_DECLARE_GPU_NORMS_FUNCTOR

// The dense update with compact state.
template <>
DeviceStatus DenseApplyCompactRMSProp<Eigen::GpuDevice>::operator()(
    const Eigen::GpuDevice& d, const CompactUpdate& u, const rmsprop_math::Hyper<float>& h,
    const rmsprop_math::Extras<float>* x);

// The sparse update with compact state (SparseApplyCompactRMSProp,
// common/compact_functors.h), enqueued as EnqueueSparseApplyRMSProp is: when
// the stream reaches its end, *host_first_bad (pinned host memory) holds
// kNoBadIndex or, with nothing written, the position of the first index
// outside [0, u.layout.rows).
template <typename Tindex>
struct EnqueueSparseApplyCompactRMSProp {
  DeviceStatus operator()(const Eigen::GpuDevice& d, const CompactUpdate& u,
                          const Tindex* indices, int64_t num_indices,
                          const rmsprop_math::Hyper<float>& h, uint64_t* host_first_bad);
};

#define RMSPROP_DECLARE_GPU_SPARSE_COMPACT_FUNCTOR(Tindex)                  \
  template <>                                                               \
  DeviceStatus EnqueueSparseApplyCompactRMSProp<Tindex>::operator()(        \
      const Eigen::GpuDevice& d, const CompactUpdate& u,                    \
      const Tindex* indices, int64_t num_indices,                           \
      const rmsprop_math::Hyper<float>& h, uint64_t* host_first_bad)
RMSPROP_DECLARE_GPU_SPARSE_COMPACT_FUNCTOR(int32_t);
RMSPROP_DECLARE_GPU_SPARSE_COMPACT_FUNCTOR(int64_t);
#undef RMSPROP_DECLARE_GPU_SPARSE_COMPACT_FUNCTOR
#undef RMSPROP_DECLARE_GPU_SPARSE_FUNCTOR

}  // namespace functor
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CUDA_GPU_FUNCTORS_H_
