// The CUDA kernel of the dense RMSProp updates (one or many variables per
// launch) and its launcher.
#ifndef RMSPROP_OP_CC_KERNELS_CUDA_DENSE_KERNEL_CU_H_
#define RMSPROP_OP_CC_KERNELS_CUDA_DENSE_KERNEL_CU_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/variant.h"
#include "rmsprop_op/cc/kernels/cuda/cuda_common.cu.h"

namespace rmsprop_op {
namespace gpu {

// Many variables go to one launch: their elements are cut into tiles of
// kThreads 16-byte vectors, the tiles of all variables are numbered in a row,
// and each block walks the tiles grid-stride, finding its variable by binary
// search over the tiles' first numbers. Small variables (biases) then cost a
// tile, not a launch.

constexpr int kMaxDenseBatch = 44;

template <typename T>
struct DenseTask {
  SlotPointers<T> slots;
  const T* grad;
  int64_t size;
  int64_t first_tile;
  double clip_divisor;  // the extras' clipnorm divisor of this variable
  bool vectorized;  // every buffer 16-byte aligned
};

// Passed by value as a kernel parameter: with the hyperparameters and the
// extras within the 4 KB every architecture accepts (sm_60 included).
template <typename T>
struct DenseBatch {
  int num_tasks;
  int64_t num_tiles;
  DenseTask<T> tasks[kMaxDenseBatch];
};

template <typename T>
constexpr int64_t kDenseTile = int64_t{kThreads} * kVectorWidth<T>;

// The variant V of the update over every tile of the batch.
template <typename T, typename V>
__global__ void __launch_bounds__(kThreads)
    DenseApplyKernel(const RMSPROP_GRID_CONSTANT DenseBatch<T> batch,
                     const HyperOf<T> host_h, const ExtrasOf<T> host_x) {
  static_assert(sizeof(DenseBatch<T>) + sizeof(HyperOf<T>) + sizeof(ExtrasOf<T>) <= 4000,
                "kernel parameters over 4 KB need sm_70 and CUDA 12.1");
  constexpr int kN = kVectorWidth<T>;
  const rmsprop_math::Hyper<DeviceReal<T>> h = ToDeviceReals<T>(host_h);
  for (int64_t tile = blockIdx.x; tile < batch.num_tiles; tile += gridDim.x) {
    int lo = 0;
    int hi = batch.num_tasks - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (batch.tasks[mid].first_tile <= tile) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const DenseTask<T>& task = batch.tasks[lo];
    const int64_t base = (tile - task.first_tile) * kDenseTile<T>;
    ExtrasOf<T> task_x = host_x;
    task_x.clip_divisor = static_cast<decltype(task_x.clip_divisor)>(task.clip_divisor);
    const rmsprop_math::Extras<DeviceReal<T>> x = ToDeviceReals<T>(task_x);
    if (task.vectorized) {
      const int64_t i = base + int64_t{threadIdx.x} * kN;
      if (i + kN <= task.size) {
        DeviceCompute<T> g[kN];
        LoadGradient<T, kN>(task.grad + i, g);
        UpdatePack<V, T, kN>(task.slots, i, g, h, x);
      } else {
        for (int64_t j = i; j < task.size; ++j) {
          UpdateOne<V, T>(task.slots, task.grad, j, h, x);
        }
      }
    } else {
#pragma unroll
      for (int e = 0; e < kN; ++e) {
        const int64_t i = base + int64_t{e} * kThreads + threadIdx.x;
        if (i < task.size) UpdateOne<V, T>(task.slots, task.grad, i, h, x);
      }
    }
  }
}

// Enqueues the dense updates on `stream`. D is the CUDA storage type
// (float, double, __half, __nv_bfloat16, rmsprop_math::Complex); T is the
// caller's type of the same bits. All updates have the variant `choice`.
template <typename D, typename T>
cudaError_t LaunchDenseApply(cudaStream_t stream, const DenseUpdate<T>* updates,
                             int num_updates, const HyperOf<D>& h,
                             const ExtrasOf<D>& x, const rmsprop_math::VariantChoice& choice) {
  if (num_updates <= 0) return cudaSuccess;
  const int max_blocks = ResidentBlocks(kThreads);
  constexpr auto kExtras = kIsReal<D> ? rmsprop_math::ExtrasDispatch::kAtRunTime
                                      : rmsprop_math::ExtrasDispatch::kNone;
  return rmsprop_math::DispatchVariant<kExtras>(choice, [&](auto variant) {
    DenseBatch<D> batch;
    batch.num_tasks = 0;
    batch.num_tiles = 0;
    auto launch = [&]() {
      const int blocks = static_cast<int>(std::min<int64_t>(batch.num_tiles, max_blocks));
      DenseApplyKernel<D, decltype(variant)><<<blocks, kThreads, 0, stream>>>(batch, h, x);
      batch.num_tasks = 0;
      batch.num_tiles = 0;
      return cudaGetLastError();
    };
    for (int i = 0; i < num_updates; ++i) {
      if (updates[i].size <= 0) continue;
      DenseTask<D>& task = batch.tasks[batch.num_tasks++];
      task.slots = AsDevice<D>(updates[i].slots);
      task.grad = reinterpret_cast<const D*>(updates[i].grad);
      task.size = updates[i].size;
      task.first_tile = batch.num_tiles;
      task.clip_divisor = updates[i].clip_divisor;
      task.vectorized = SlotsAligned16(task.slots) && IsAligned16(task.grad);
      batch.num_tiles += CeilDiv(task.size, kDenseTile<D>);
      if (batch.num_tasks == kMaxDenseBatch) {
        const cudaError_t err = launch();
        if (err != cudaSuccess) return err;
      }
    }
    return batch.num_tasks > 0 ? launch() : cudaSuccess;
  });
}

// The plain update, the variant of the first update's slots.
template <typename D, typename T>
cudaError_t LaunchDenseApply(cudaStream_t stream, const DenseUpdate<T>* updates,
                             int num_updates, const HyperOf<D>& h) {
  if (num_updates <= 0) return cudaSuccess;
  return LaunchDenseApply<D>(stream, updates, num_updates, h, ExtrasOf<D>{},
                             updates[0].slots.Choice());
}

}  // namespace gpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CUDA_DENSE_KERNEL_CU_H_
