// The CUDA kernels of the sparse RMSProp updates (index validation, grouping
// rows with cub, the row update) and their launcher.
#ifndef RMSPROP_OP_CC_KERNELS_CUDA_SPARSE_KERNEL_CU_H_
#define RMSPROP_OP_CC_KERNELS_CUDA_SPARSE_KERNEL_CU_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_select.cuh>

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/variant.h"
#include "rmsprop_op/cc/kernels/cuda/cuda_common.cu.h"

namespace rmsprop_op {
namespace gpu {

// 1. One kernel checks every index and records the smallest bad position
//    (atomicMin), and writes the positions 0..n-1.
// 2. cub sorts (index, position) pairs by index; the sort is stable, so equal
//    indices stay in position order.
// 3. cub keeps the first pair of each run of equal indices: the unique rows
//    and where each one's run starts.
// 4. One warp per (unique row, chunk of columns) sums the gradient rows of
//    the run in position order, in the compute type, and applies the update;
//    the sums are the CPU kernel's, to the bit, on every run.
// Every kernel after the first does nothing if an index was bad, so the whole
// sequence is enqueued at once; the result is copied to the caller's host
// memory at the end, and nobody waits for it here. Steps 1 to 3 are
// EnqueueRowGroups, which the sparse update with compact state
// (sparse_compact_kernel.cu.h) shares.

constexpr unsigned long long kNoBadIndex = ~0ull;

template <typename Tindex, typename P>
__global__ void __launch_bounds__(kThreads)
    ValidateIndicesKernel(const Tindex* __restrict__ indices, P num_indices,
                          int64_t num_rows, unsigned long long* bad,
                          P* __restrict__ positions) {
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
       i < num_indices; i += int64_t{gridDim.x} * blockDim.x) {
    const Tindex index = indices[i];
    if (index < 0 || static_cast<int64_t>(index) >= num_rows) {
      atomicMin(bad, static_cast<unsigned long long>(i));
    }
    positions[i] = static_cast<P>(i);
  }
}

template <typename V, typename T, typename Key, typename P, int kN>
__global__ void __launch_bounds__(kThreads)
    SparseApplyKernel(const SlotPointers<T> slots, const T* __restrict__ grad,
                      const P* __restrict__ sorted_positions,
                      const Key* __restrict__ unique_rows,
                      const P* __restrict__ run_starts,
                      const P* __restrict__ num_runs_ptr, int64_t num_indices,
                      int64_t row_size, int64_t chunks_per_row,
                      const unsigned long long* bad, const HyperOf<T> host_h) {
  using C = DeviceCompute<T>;  // the sums flush as the CPU's do
  if (*bad != kNoBadIndex) return;
  const rmsprop_math::Hyper<DeviceReal<T>> h = ToDeviceReals<T>(host_h);
  const rmsprop_math::Extras<DeviceReal<T>> no_extras = {};  // not read
  const int64_t num_runs = *num_runs_ptr;
  const int64_t num_items = num_runs * chunks_per_row;
  const int lane = threadIdx.x % kWarpSize;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / kWarpSize);
  for (int64_t item =
           (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / kWarpSize;
       item < num_items; item += warps) {
    const int64_t run = item / chunks_per_row;
    const int64_t chunk = item - run * chunks_per_row;
    const int64_t col = (chunk * kWarpSize + lane) * kN;
    if (col >= row_size) continue;
    const int64_t begin = run_starts[run];
    const int64_t end = run + 1 < num_runs ? run_starts[run + 1] : num_indices;
    C sum[kN];
    LoadGradient<T, kN>(grad + sorted_positions[begin] * row_size + col, sum);
    // Four rows per step: their loads are independent, the additions stay
    // in position order.
    int64_t k = begin + 1;
    for (; k + 4 <= end; k += 4) {
      C g[4][kN];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        LoadGradient<T, kN>(grad + sorted_positions[k + r] * row_size + col,
                            g[r]);
      }
#pragma unroll
      for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int e = 0; e < kN; ++e) sum[e] += g[r][e];
      }
    }
    for (; k < end; ++k) {
      C g[kN];
      LoadGradient<T, kN>(grad + sorted_positions[k] * row_size + col, g);
#pragma unroll
      for (int e = 0; e < kN; ++e) sum[e] += g[e];
    }
    const int64_t row = static_cast<int64_t>(unique_rows[run]);
    UpdatePack<V, T, kN>(slots, row * row_size + col, sum, h, no_extras);
  }
}

inline size_t RoundUp256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Carves one scratch allocation into 256-byte aligned buffers.
class ScratchLayout {
 public:
  template <typename U>
  size_t Add(int64_t count) {
    const size_t offset = size_;
    size_ += RoundUp256(static_cast<size_t>(count) * sizeof(U));
    return offset;
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
};

// Frees a scratch buffer when the launcher returns: the frees are
// stream-ordered, so the work already enqueued still sees the memory.
class ScopedScratch {
 public:
  ScopedScratch(ScratchAllocator* allocator, size_t bytes)
      : allocator_(allocator),
        base_(static_cast<char*>(allocator->Allocate(bytes))) {}
  ~ScopedScratch() {
    if (base_ != nullptr) allocator_->Free(base_);
  }
  ScopedScratch(const ScopedScratch&) = delete;
  ScopedScratch& operator=(const ScopedScratch&) = delete;

  template <typename U>
  U* At(size_t offset) const {
    return reinterpret_cast<U*>(base_ + offset);
  }
  bool ok() const { return base_ != nullptr; }

 private:
  ScratchAllocator* allocator_;
  char* base_;
};

template <typename V, typename T, typename Key, typename P, int kN>
void LaunchSparseApplyKernel(cudaStream_t stream, int max_blocks,
                             const SlotPointers<T>& slots, const T* grad,
                             const P* sorted_positions, const Key* unique_rows,
                             const P* run_starts, const P* num_runs,
                             int64_t num_indices, int64_t row_size,
                             const unsigned long long* bad,
                             const HyperOf<T>& h) {
  const int64_t chunks_per_row = CeilDiv(row_size, int64_t{kWarpSize} * kN);
  // At most one run per index; warps past the real number of runs return.
  const int64_t warps_needed = num_indices * chunks_per_row;
  const int blocks = static_cast<int>(std::min<int64_t>(
      CeilDiv(warps_needed, kThreads / kWarpSize), max_blocks));
  SparseApplyKernel<V, T, Key, P, kN>
      <<<blocks, kThreads, 0, stream>>>(slots, grad, sorted_positions,
                                        unique_rows, run_starts, num_runs,
                                        num_indices, row_size, chunks_per_row,
                                        bad, h);
}

template <typename V, typename T, typename Key, typename P>
void LaunchSparseApplyVariant(cudaStream_t stream, int max_blocks,
                              const SlotPointers<T>& slots, const T* grad,
                              const P* sorted_positions, const Key* unique_rows,
                              const P* run_starts, const P* num_runs,
                              int64_t num_indices, int64_t row_size,
                              const unsigned long long* bad,
                              const HyperOf<T>& h) {
  constexpr int kN = kVectorWidth<T>;
  // Rows are 16-byte aligned when the buffers are and a row is whole vectors.
  if (row_size % kN == 0 && SlotsAligned16(slots) && IsAligned16(grad)) {
    LaunchSparseApplyKernel<V, T, Key, P, kN>(
        stream, max_blocks, slots, grad, sorted_positions, unique_rows,
        run_starts, num_runs, num_indices, row_size, bad, h);
  } else {
    LaunchSparseApplyKernel<V, T, Key, P, 1>(
        stream, max_blocks, slots, grad, sorted_positions, unique_rows,
        run_starts, num_runs, num_indices, row_size, bad, h);
  }
}

// A sparse update's indices grouped by row, on the device: sorted_positions
// lists the positions of the indices by row, rows ascending, equal rows in
// position order; run r names row unique_rows[r], positions
// sorted_positions[run_starts[r] .. run_starts[r + 1]) (the last run ends at
// num_indices), and *num_runs runs exist. A kernel that reads them returns
// at once if *bad != kNoBadIndex.
template <typename KeyT, typename PositionT>
struct RowGroups {
  using Key = KeyT;
  using Position = PositionT;
  const PositionT* sorted_positions;
  const KeyT* unique_rows;
  const PositionT* run_starts;
  const PositionT* num_runs;
  int64_t num_indices;
  const unsigned long long* bad;
  int max_blocks;  // resident blocks of kThreads threads
};

// P: the type of positions, int32_t unless there are more than 2^31 indices.
template <typename P, typename Tindex, typename Launch>
cudaError_t EnqueueRowGroupsWithPositions(cudaStream_t stream, ScratchAllocator* scratch,
                                          const Tindex* indices, int64_t num_indices,
                                          int64_t num_rows, bool update, const Launch& launch,
                                          unsigned long long* host_first_bad) {
  // Checked indices are in [0, num_rows): sorting them as unsigned keys of
  // just the bits num_rows - 1 needs gives the same order in fewer passes.
  using Key = std::make_unsigned_t<Tindex>;
  const P n = static_cast<P>(num_indices);
  constexpr int kKeyBits = 8 * sizeof(Key);
  int end_bit = 1;
  while (end_bit < kKeyBits &&
         (static_cast<uint64_t>(num_rows - 1) >> end_bit) != 0) {
    ++end_bit;
  }
  const Key* keys = reinterpret_cast<const Key*>(indices);

  size_t sort_bytes = 0;
  size_t unique_bytes = 0;
  cudaError_t err = cudaSuccess;
  if (update) {
    err = cub::DeviceRadixSort::SortPairs(
        nullptr, sort_bytes, static_cast<const Key*>(nullptr),
        static_cast<Key*>(nullptr), static_cast<const P*>(nullptr),
        static_cast<P*>(nullptr), n, 0, end_bit, stream);
    if (err != cudaSuccess) return err;
    err = cub::DeviceSelect::UniqueByKey(
        nullptr, unique_bytes, static_cast<const Key*>(nullptr),
        static_cast<const P*>(nullptr), static_cast<Key*>(nullptr),
        static_cast<P*>(nullptr), static_cast<P*>(nullptr), n, stream);
    if (err != cudaSuccess) return err;
  }

  ScratchLayout layout;
  const size_t bad_at = layout.Add<unsigned long long>(1);
  const size_t positions_at = layout.Add<P>(num_indices);
  size_t sorted_keys_at = 0, sorted_positions_at = 0, unique_rows_at = 0,
         run_starts_at = 0, num_runs_at = 0, cub_at = 0;
  if (update) {
    sorted_keys_at = layout.Add<Key>(num_indices);
    sorted_positions_at = layout.Add<P>(num_indices);
    unique_rows_at = layout.Add<Key>(num_indices);
    run_starts_at = layout.Add<P>(num_indices);
    num_runs_at = layout.Add<P>(1);
    cub_at = layout.Add<char>(std::max(sort_bytes, unique_bytes));
  }
  ScopedScratch mem(scratch, layout.size());
  if (!mem.ok()) return cudaErrorMemoryAllocation;
  unsigned long long* bad = mem.At<unsigned long long>(bad_at);
  P* positions = mem.At<P>(positions_at);

  const int max_blocks = ResidentBlocks(kThreads);
  err = cudaMemsetAsync(bad, 0xff, sizeof(*bad), stream);  // kNoBadIndex
  if (err != cudaSuccess) return err;
  ValidateIndicesKernel<Tindex, P>
      <<<static_cast<int>(
             std::min<int64_t>(CeilDiv(num_indices, kThreads), max_blocks)),
         kThreads, 0, stream>>>(indices, n, num_rows, bad, positions);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  if (update) {
    Key* sorted_keys = mem.At<Key>(sorted_keys_at);
    P* sorted_positions = mem.At<P>(sorted_positions_at);
    Key* unique_rows = mem.At<Key>(unique_rows_at);
    P* run_starts = mem.At<P>(run_starts_at);
    P* num_runs = mem.At<P>(num_runs_at);
    void* cub_temp = mem.At<char>(cub_at);
    // Bad keys, if any, sort to some order and are never applied.
    err = cub::DeviceRadixSort::SortPairs(cub_temp, sort_bytes, keys,
                                          sorted_keys, positions,
                                          sorted_positions, n, 0, end_bit,
                                          stream);
    if (err != cudaSuccess) return err;
    // `positions` is still 0..n-1: the first of each run names its start.
    err = cub::DeviceSelect::UniqueByKey(
        cub_temp, unique_bytes, static_cast<const Key*>(sorted_keys),
        static_cast<const P*>(positions), unique_rows, run_starts, num_runs, n,
        stream);
    if (err != cudaSuccess) return err;
    launch(RowGroups<Key, P>{sorted_positions, unique_rows, run_starts, num_runs,
                             num_indices, bad, max_blocks});
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }

  return cudaMemcpyAsync(host_first_bad, bad, sizeof(*bad),
                         cudaMemcpyDeviceToHost, stream);
}

// Enqueues the index check, the grouping of the indices by row and (when
// `update`) launch(RowGroups<...>), which enqueues the update's kernels,
// on `stream` without waiting for them. When the stream reaches its end,
// *host_first_bad (pinned host memory, written by the stream) holds
// kNoBadIndex or, with nothing written, the position of the first index
// outside [0, num_rows); where the answer needs no device work it is
// written before returning. Returns cudaErrorMemoryAllocation when
// `scratch` has no memory, before anything is enqueued.
template <typename Tindex, typename Launch>
cudaError_t EnqueueRowGroups(cudaStream_t stream, ScratchAllocator* scratch,
                             const Tindex* indices, int64_t num_indices, int64_t num_rows,
                             bool update, const Launch& launch,
                             unsigned long long* host_first_bad) {
  static_assert(std::is_integral_v<Tindex> && std::is_signed_v<Tindex>,
                "indices are signed integers");
  *host_first_bad = kNoBadIndex;
  if (num_indices <= 0) return cudaSuccess;
  if (num_rows <= 0) {  // no index can be in range
    *host_first_bad = 0;
    return cudaSuccess;
  }
  if (num_indices <= std::numeric_limits<int32_t>::max()) {
    return EnqueueRowGroupsWithPositions<int32_t>(stream, scratch, indices, num_indices,
                                                  num_rows, update, launch, host_first_bad);
  }
  return EnqueueRowGroupsWithPositions<int64_t>(stream, scratch, indices, num_indices,
                                                num_rows, update, launch, host_first_bad);
}

// Enqueues the sparse update on `stream` without waiting for it; the answer
// and the errors are EnqueueRowGroups's. D is the CUDA storage type, T the
// caller's type of the same bits.
template <typename D, typename T, typename Tindex>
cudaError_t LaunchSparseApply(cudaStream_t stream, ScratchAllocator* scratch,
                              const SlotPointers<T>& slots, const T* grad,
                              const Tindex* indices, int64_t num_indices,
                              int64_t num_rows, int64_t row_size,
                              const HyperOf<D>& h,
                              unsigned long long* host_first_bad) {
  const SlotPointers<D> d_slots = AsDevice<D>(slots);
  const D* d_grad = reinterpret_cast<const D*>(grad);
  auto launch = [&](const auto& groups) {
    using G = std::decay_t<decltype(groups)>;
    rmsprop_math::DispatchVariant<rmsprop_math::ExtrasDispatch::kNone>(
        d_slots.Choice(), [&](auto variant) {
          LaunchSparseApplyVariant<decltype(variant), D, typename G::Key,
                                   typename G::Position>(
              stream, groups.max_blocks, d_slots, d_grad, groups.sorted_positions,
              groups.unique_rows, groups.run_starts, groups.num_runs, groups.num_indices,
              row_size, groups.bad, h);
        });
  };
  return EnqueueRowGroups(stream, scratch, indices, num_indices, num_rows, row_size > 0,
                          launch, host_first_bad);
}

}  // namespace gpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CUDA_SPARSE_KERNEL_CU_H_
