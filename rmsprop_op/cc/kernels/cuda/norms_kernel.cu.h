// The CUDA kernels of FusedGradientSquaredNorms and their launcher: the
// same sums, in the same order, as the CPU's (cpu/squared_norms.h), so that
// both devices give the same bits.
#ifndef RMSPROP_OP_CC_KERNELS_CUDA_NORMS_KERNEL_CU_H_
#define RMSPROP_OP_CC_KERNELS_CUDA_NORMS_KERNEL_CU_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "rmsprop_op/cc/kernels/common/flushed_double.h"
#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/cuda/cuda_common.cu.h"

namespace rmsprop_op {
namespace gpu {

// Gradients per launch: their blocks are numbered in a row and each CUDA
// block finds its gradient by binary search, as the dense kernel does.
constexpr int kMaxNormBatch = 100;

template <typename T>
struct NormTask {
  const T* grad;
  int64_t size;
  int64_t first_block;  // among all blocks of the op
};

template <typename T>
struct NormBatch {
  int num_tasks;
  int first_task;  // of the op's gradients
  int64_t first_block;
  int64_t num_blocks;
  NormTask<T> tasks[kMaxNormBatch];
};

// One CUDA block per norm block: thread k sums (g / divisor)^2 of elements
// k, k + kNormLanes, ... in order (in double, flushed as the CPU flushes),
// then the lanes are added pairwise in shared memory.
template <typename T>
__global__ void __launch_bounds__(kNormLanes)
    BlockSquaresKernel(const RMSPROP_GRID_CONSTANT NormBatch<T> batch,
                       double divisor, double* block_sums) {
  using rmsprop_math::FlushedDouble;
  __shared__ double lanes[kNormLanes];
  const DeviceCompute<T> div = ToDevice(static_cast<ComputeType<T>>(divisor));
  for (int64_t b = blockIdx.x; b < batch.num_blocks; b += gridDim.x) {
    const int64_t block = batch.first_block + b;
    int lo = 0;
    int hi = batch.num_tasks - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (batch.tasks[mid].first_block <= block) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const NormTask<T>& task = batch.tasks[lo];
    const int64_t start = (block - task.first_block) * kNormBlock;
    const int64_t end = std::min<int64_t>(task.size, start + kNormBlock);
    FlushedDouble sum(0.0);
    for (int64_t i = start + threadIdx.x; i < end; i += kNormLanes) {
      const DeviceCompute<T> q = ToDevice(ToCompute(task.grad[i])) / div;
      const FlushedDouble wide(static_cast<double>(FromDevice(q)));
      sum = sum + wide * wide;
    }
    lanes[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = kNormLanes / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) {
        lanes[threadIdx.x] = FlushedDouble(lanes[threadIdx.x]) +
                             FlushedDouble(lanes[threadIdx.x + stride]);
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) block_sums[block] = lanes[0];
    __syncthreads();  // lanes are reused by the next block
  }
}

// A thread per gradient adds its block sums in order.
template <typename T>
__global__ void AddBlockSumsKernel(const RMSPROP_GRID_CONSTANT NormBatch<T> batch,
                                   const double* block_sums, double* out) {
  using rmsprop_math::FlushedDouble;
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= batch.num_tasks) return;
  const NormTask<T>& task = batch.tasks[t];
  const int64_t blocks = CeilDiv(task.size, kNormBlock);
  FlushedDouble sum(0.0);
  for (int64_t b = 0; b < blocks; ++b) {
    sum = sum + FlushedDouble(block_sums[task.first_block + b]);
  }
  out[batch.first_task + t] = sum;
}

// Enqueues the squared norms of `num_grads` gradients (D: the CUDA storage
// type) into out[num_grads] (device memory).
template <typename D, typename T>
cudaError_t LaunchSquaredNorms(cudaStream_t stream, ScratchAllocator* scratch,
                               const T* const* grads, const int64_t* sizes,
                               int num_grads, double divisor, double* out) {
  int64_t total_blocks = 0;
  for (int i = 0; i < num_grads; ++i) total_blocks += CeilDiv(sizes[i], kNormBlock);
  double* block_sums = nullptr;
  if (total_blocks > 0) {
    block_sums = static_cast<double*>(scratch->Allocate(total_blocks * sizeof(double)));
    if (block_sums == nullptr) return cudaErrorMemoryAllocation;
  }
  const int max_blocks = ResidentBlocks(kNormLanes);
  NormBatch<D> batch = {};
  int64_t next_block = 0;
  cudaError_t err = cudaSuccess;
  auto launch = [&]() {
    if (batch.num_blocks > 0) {
      const int blocks = static_cast<int>(std::min<int64_t>(batch.num_blocks, max_blocks));
      BlockSquaresKernel<D><<<blocks, kNormLanes, 0, stream>>>(batch, divisor, block_sums);
    }
    AddBlockSumsKernel<D><<<CeilDiv(batch.num_tasks, kThreads), kThreads, 0, stream>>>(
        batch, block_sums, out);
    return cudaGetLastError();
  };
  for (int first = 0; first < num_grads && err == cudaSuccess; first += kMaxNormBatch) {
    batch.num_tasks = std::min(kMaxNormBatch, num_grads - first);
    batch.first_task = first;
    batch.first_block = next_block;
    for (int t = 0; t < batch.num_tasks; ++t) {
      NormTask<D>& task = batch.tasks[t];
      task.grad = reinterpret_cast<const D*>(grads[first + t]);
      task.size = sizes[first + t];
      task.first_block = next_block;
      next_block += CeilDiv(task.size, kNormBlock);
    }
    batch.num_blocks = next_block - batch.first_block;
    err = launch();
  }
  if (block_sums != nullptr) scratch->Free(block_sums);
  return err;
}

}  // namespace gpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CUDA_NORMS_KERNEL_CU_H_
