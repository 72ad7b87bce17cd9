// The CUDA kernel of the sparse updates with compact state
// (compact_format.h) and its launcher: the indices are checked and grouped
// by row as for float32 state (sparse_kernel.cu.h), then one thread block
// per touched state block, one thread per element, does what the CPU's
// SparseApplyCompactRMSProp does to that block, to the bit.
#ifndef RMSPROP_OP_CC_KERNELS_CUDA_SPARSE_COMPACT_KERNEL_CU_H_
#define RMSPROP_OP_CC_KERNELS_CUDA_SPARSE_COMPACT_KERNEL_CU_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "rmsprop_op/cc/kernels/common/compact_format.h"
#include "rmsprop_op/cc/kernels/common/compact_functors.h"
#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/common/variant.h"
#include "rmsprop_op/cc/kernels/cuda/compact_kernel.cu.h"
#include "rmsprop_op/cc/kernels/cuda/cuda_common.cu.h"
#include "rmsprop_op/cc/kernels/cuda/sparse_kernel.cu.h"

namespace rmsprop_op {
namespace gpu {

// Work item (run g, column block cb) is state block (row block of
// unique_rows[g], cb); only the first run of a row block takes its blocks,
// so each touched block is written by one thread block. In it, a touched row
// gets the sum of its gradient rows in position order (the CPU's, as the
// float32 ops sum duplicates), an untouched row none: int8 slots decode the
// whole block, update the touched rows and encode the whole block again
// (untouched rows re-encoded with the block's new scale: the CPU's bits,
// which the CPU gets by encoding only the touched rows where it can);
// bfloat16 slots read and write the touched rows only. Nothing runs if an
// index was bad.
template <typename V, StateFormat kFormat, typename Key, typename P>
__global__ void __launch_bounds__(kThreads)
    SparseCompactKernel(const CompactUpdate u, const RowGroups<Key, P> groups,
                        const rmsprop_math::Hyper<float> h) {
  __shared__ uint32_t largest;
  // The run of each row of the block, -1 for an untouched row.
  __shared__ int64_t run_of_row[kCompactBlockSize];
  if (*groups.bad != kNoBadIndex) return;
  constexpr bool kInt8 = kFormat == StateFormat::kInt8;
  const rmsprop_math::Extras<float> no_extras = {};
  const BlockLayout& l = u.layout;
  const int64_t num_runs = *groups.num_runs;
  const int64_t num_items = num_runs * l.column_blocks;
  for (int64_t item = blockIdx.x; item < num_items; item += gridDim.x) {
    const int64_t first_run = item / l.column_blocks;
    const int64_t cb = item - first_run * l.column_blocks;
    const int64_t row_block = static_cast<int64_t>(groups.unique_rows[first_run]) /
                              l.rows_per_block;
    if (first_run > 0 &&
        static_cast<int64_t>(groups.unique_rows[first_run - 1]) / l.rows_per_block ==
            row_block) {
      continue;  // the same for every thread of the block
    }
    const int64_t first_row = row_block * l.rows_per_block;
    const int64_t b = row_block * l.column_blocks + cb;
    const int64_t offset = l.BlockOffset(b);
    const int64_t columns = l.BlockColumns(b);
    const int64_t n = l.BlockRows(b) * columns;
    // rows_per_block <= kThreads; the runs of one row block are consecutive.
    if (threadIdx.x < l.rows_per_block) run_of_row[threadIdx.x] = -1;
    __syncthreads();
    {
      const int64_t run = first_run + threadIdx.x;
      if (threadIdx.x < l.rows_per_block && run < num_runs) {
        const int64_t row = static_cast<int64_t>(groups.unique_rows[run]);
        if (row / l.rows_per_block == row_block) run_of_row[row - first_row] = run;
      }
    }
    __syncthreads();
    const bool active = threadIdx.x < n;
    const int64_t local_row = active ? threadIdx.x / columns : 0;
    const int64_t run = active ? run_of_row[local_row] : -1;
    const bool touched = run >= 0;
    // A block is one contiguous run of elements (compact_format.h).
    const int64_t i = offset + threadIdx.x;
    float g = 0.0f;
    if (touched) {
      const int64_t column = cb * l.columns_per_block + (threadIdx.x - local_row * columns);
      const int64_t begin = groups.run_starts[run];
      const int64_t end = run + 1 < num_runs ? static_cast<int64_t>(groups.run_starts[run + 1])
                                             : groups.num_indices;
      g = u.grad[static_cast<int64_t>(groups.sorted_positions[begin]) * l.columns + column];
      for (int64_t k = begin + 1; k < end; ++k) {
        g += u.grad[static_cast<int64_t>(groups.sorted_positions[k]) * l.columns + column];
      }
    }
    float var = 0.0f, ms = 0.0f, mg = 0.0f, mom = 0.0f, ema = 0.0f;
    if constexpr (kInt8) {
      if (active) {
        ms = DecodeAt(u.ms, i, b, false);
        if (V::kCentered) mg = DecodeAt(u.mg, i, b, true);
        if (V::kCentered) ms = compact::ConsistentMeanSquare(ms, mg);
        if (V::kMomentum) mom = DecodeAt(u.mom, i, b, true);
      }
      if (touched) {
        var = u.var[i];
        rmsprop_math::UpdateElement<V, float>(g, var, ms, mg, mom, ema, h, no_extras);
        u.var[i] = var;
      }
      EncodeSlots<V>(u, b, i, active, ms, mg, mom, &largest);
    } else if (touched) {
      var = u.var[i];
      ms = __bfloat162float(__ushort_as_bfloat16(u.ms.bfloat16[i]));
      if (V::kCentered) mg = __bfloat162float(__ushort_as_bfloat16(u.mg.bfloat16[i]));
      if (V::kCentered) ms = compact::ConsistentMeanSquare(ms, mg);
      if (V::kMomentum) mom = __bfloat162float(__ushort_as_bfloat16(u.mom.bfloat16[i]));
      rmsprop_math::UpdateElement<V, float>(g, var, ms, mg, mom, ema, h, no_extras);
      u.var[i] = var;
      u.ms.bfloat16[i] = __bfloat16_as_ushort(FromCompute<__nv_bfloat16>(ms));
      if (V::kCentered) u.mg.bfloat16[i] = __bfloat16_as_ushort(FromCompute<__nv_bfloat16>(mg));
      if (V::kMomentum) {
        u.mom.bfloat16[i] = __bfloat16_as_ushort(FromCompute<__nv_bfloat16>(mom));
      }
    }
    __syncthreads();  // run_of_row is read above before the next item resets it
  }
}

// Enqueues the sparse update with compact state on `stream` without waiting
// for it; the answer in *host_first_bad and the errors are
// EnqueueRowGroups's (sparse_kernel.cu.h). u.grad holds one row of
// u.layout.columns elements per index.
template <typename Tindex>
cudaError_t LaunchSparseCompactApply(cudaStream_t stream, ScratchAllocator* scratch,
                                     const CompactUpdate& u, const Tindex* indices,
                                     int64_t num_indices, const rmsprop_math::Hyper<float>& h,
                                     unsigned long long* host_first_bad) {
  auto launch = [&](const auto& groups) {
    using G = std::decay_t<decltype(groups)>;
    // At most one run per index; items past the real number of runs are
    // never reached.
    const int64_t items =
        std::min<int64_t>(num_indices, groups.max_blocks) * u.layout.column_blocks;
    const int blocks = static_cast<int>(std::min<int64_t>(items, groups.max_blocks));
    rmsprop_math::DispatchVariant<rmsprop_math::ExtrasDispatch::kNone>(
        ChoiceOf(u), [&](auto variant) {
          using V = decltype(variant);
          if (u.format == StateFormat::kInt8) {
            SparseCompactKernel<V, StateFormat::kInt8, typename G::Key, typename G::Position>
                <<<blocks, kThreads, 0, stream>>>(u, groups, h);
          } else {
            SparseCompactKernel<V, StateFormat::kBfloat16, typename G::Key,
                                typename G::Position><<<blocks, kThreads, 0, stream>>>(u, groups,
                                                                                       h);
          }
        });
  };
  return EnqueueRowGroups(stream, scratch, indices, num_indices, u.layout.rows,
                          u.layout.num_blocks() > 0, launch, host_first_bad);
}

}  // namespace gpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CUDA_SPARSE_COMPACT_KERNEL_CU_H_
