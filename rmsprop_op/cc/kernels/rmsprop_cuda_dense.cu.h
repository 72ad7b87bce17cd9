// The CUDA kernel of the dense RMSProp updates (one or many variables per
// launch) and its launcher.
#ifndef RMSPROP_OP_CC_KERNELS_RMSPROP_CUDA_DENSE_CU_H_
#define RMSPROP_OP_CC_KERNELS_RMSPROP_CUDA_DENSE_CU_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "rmsprop_op/cc/kernels/rmsprop_cuda_common.cu.h"
#include "rmsprop_op/cc/kernels/rmsprop_functors.h"

namespace rmsprop_op {
namespace gpu {

// Many variables go to one launch: their elements are cut into tiles of
// kThreads 16-byte vectors, the tiles of all variables are numbered in a row,
// and each block walks the tiles grid-stride, finding its variable by binary
// search over the tiles' first numbers. Small variables (biases) then cost a
// tile, not a launch.

constexpr int kMaxDenseBatch = 56;

template <typename T>
struct DenseTask {
  SlotPointers<T> slots;
  const T* grad;
  int64_t size;
  int64_t first_tile;
  bool vectorized;  // every buffer 16-byte aligned
};

// Passed by value as a kernel parameter: with the hyperparameters within the
// 4 KB every architecture accepts (sm_60 included).
template <typename T>
struct DenseBatch {
  int num_tasks;
  int64_t num_tiles;
  DenseTask<T> tasks[kMaxDenseBatch];
};

// Kernel parameters read in place, not copied to local memory (sm_70+).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
#define RMSPROP_GRID_CONSTANT
#else
#define RMSPROP_GRID_CONSTANT __grid_constant__
#endif

template <typename T>
constexpr int64_t kDenseTile = int64_t{kThreads} * kVectorWidth<T>;

template <typename T, bool kCentered, bool kMomentum>
__global__ void __launch_bounds__(kThreads)
    DenseApplyKernel(const RMSPROP_GRID_CONSTANT DenseBatch<T> batch,
                     const HyperOf<T> h) {
  static_assert(sizeof(DenseBatch<T>) + sizeof(HyperOf<T>) <= 4000,
                "kernel parameters over 4 KB need sm_70 and CUDA 12.1");
  constexpr int kN = kVectorWidth<T>;
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
    if (task.vectorized) {
      const int64_t i = base + int64_t{threadIdx.x} * kN;
      if (i + kN <= task.size) {
        DeviceCompute<T> g[kN];
        LoadGradient<T, kN>(task.grad + i, g);
        UpdatePack<T, kN, kCentered, kMomentum>(task.slots, i, g, h);
      } else {
        for (int64_t j = i; j < task.size; ++j) {
          UpdateOne<T, kCentered, kMomentum>(task.slots, task.grad, j, h);
        }
      }
    } else {
#pragma unroll
      for (int e = 0; e < kN; ++e) {
        const int64_t i = base + int64_t{e} * kThreads + threadIdx.x;
        if (i < task.size) {
          UpdateOne<T, kCentered, kMomentum>(task.slots, task.grad, i, h);
        }
      }
    }
  }
}

template <typename D, bool kCentered, bool kMomentum, typename T>
cudaError_t LaunchDenseVariant(cudaStream_t stream,
                               const DenseUpdate<T>* updates, int num_updates,
                               const HyperOf<D>& h) {
  const int max_blocks = ResidentBlocks(kThreads);
  DenseBatch<D> batch;
  auto launch = [&]() {
    const int blocks =
        static_cast<int>(std::min<int64_t>(batch.num_tiles, max_blocks));
    DenseApplyKernel<D, kCentered, kMomentum>
        <<<blocks, kThreads, 0, stream>>>(batch, h);
    batch.num_tasks = 0;
    batch.num_tiles = 0;
    return cudaGetLastError();
  };
  batch.num_tasks = 0;
  batch.num_tiles = 0;
  for (int i = 0; i < num_updates; ++i) {
    if (updates[i].size <= 0) continue;
    DenseTask<D>& task = batch.tasks[batch.num_tasks++];
    task.slots = AsDevice<D>(updates[i].slots);
    task.grad = reinterpret_cast<const D*>(updates[i].grad);
    task.size = updates[i].size;
    task.first_tile = batch.num_tiles;
    task.vectorized = SlotsAligned16(task.slots) && IsAligned16(task.grad);
    batch.num_tiles += CeilDiv(task.size, kDenseTile<D>);
    if (batch.num_tasks == kMaxDenseBatch) {
      const cudaError_t err = launch();
      if (err != cudaSuccess) return err;
    }
  }
  return batch.num_tasks > 0 ? launch() : cudaSuccess;
}

// Enqueues the dense updates on `stream`. D is the CUDA storage type
// (float, double, __half, __nv_bfloat16, rmsprop_math::Complex); T is the caller's type of the same
// bits. All updates are centered or not, and have a momentum slot or not, as
// the first one.
template <typename D, typename T>
cudaError_t LaunchDenseApply(cudaStream_t stream, const DenseUpdate<T>* updates,
                             int num_updates, const HyperOf<D>& h) {
  if (num_updates <= 0) return cudaSuccess;
  const bool centered = updates[0].slots.mg != nullptr;
  const bool momentum = updates[0].slots.mom != nullptr;
  if (centered) {
    return momentum
               ? LaunchDenseVariant<D, true, true>(stream, updates,
                                                   num_updates, h)
               : LaunchDenseVariant<D, true, false>(stream, updates,
                                                    num_updates, h);
  }
  return momentum ? LaunchDenseVariant<D, false, true>(stream, updates,
                                                       num_updates, h)
                  : LaunchDenseVariant<D, false, false>(stream, updates,
                                                        num_updates, h);
}

}  // namespace gpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_RMSPROP_CUDA_DENSE_CU_H_
