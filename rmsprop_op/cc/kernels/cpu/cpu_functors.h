// The CPU functors of the fused RMSProp ops (common/functors.h), shared by
// the op kernels (cpu_kernels.cc, which instantiates them once) and the XLA
// custom calls (xla/).
//
// Work is split over the caller's thread pool (no threads of our own); each
// shard runs the element loop of element_loops.h chosen for this processor
// and variant.
#ifndef RMSPROP_OP_CC_KERNELS_CPU_CPU_FUNCTORS_H_
#define RMSPROP_OP_CC_KERNELS_CPU_CPU_FUNCTORS_H_

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/cpu/cost_model.h"
#include "rmsprop_op/cc/kernels/cpu/element_loops.h"
#include "rmsprop_op/cc/kernels/cpu/sparse_row_groups.h"
#include "rmsprop_op/cc/kernels/cpu/squared_norms.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {

using CPUDevice = Eigen::ThreadPoolDevice;

namespace functor {

using cpu::ElementCost;
using cpu::ScatteredElementCost;
using cpu::GroupPositionsByRow;
using cpu::RowGroups;
using cpu::SelectUpdateRange;
using cpu::UpdateRangeFn;

// Runs range_of_update(i, begin, end), a range of update i's elements, over
// every element of `updates`. Many variables: the concatenation of all their
// elements is sharded, so that small variables share a thread and large ones
// are split.
template <typename T, typename RangeOfUpdate>
void ShardUpdates(const CPUDevice& d, const DenseUpdate<T>* updates,
                  int num_updates, const RangeOfUpdate& range_of_update) {
  if (num_updates == 1) {
    d.parallelFor(updates[0].size, ElementCost(updates[0].slots),
                  [&](Eigen::Index begin, Eigen::Index end) {
                    range_of_update(0, begin, end);
                  });
    return;
  }
  std::vector<int64_t> starts(num_updates + 1, 0);
  for (int i = 0; i < num_updates; ++i) {
    starts[i + 1] = starts[i] + updates[i].size;
  }
  d.parallelFor(starts.back(), ElementCost(updates[0].slots),
                [&](Eigen::Index begin, Eigen::Index end) {
                  int i = static_cast<int>(
                      std::upper_bound(starts.begin(), starts.end(), begin) -
                      starts.begin() - 1);
                  for (; i < num_updates && starts[i] < end; ++i) {
                    const int64_t lo = std::max<int64_t>(begin, starts[i]);
                    const int64_t hi = std::min<int64_t>(end, starts[i + 1]);
                    range_of_update(i, lo - starts[i], hi - starts[i]);
                  }
                });
}

// The gradient step's loop (rmsprop_math::GradientTransform) for these
// extras: neutral steps cost nothing, a power-of-two loss scale without clip
// divisors multiplies.
template <typename R>
int GradientTransformOf(const std::vector<rmsprop_math::Extras<R>>& extras) {
  const rmsprop_math::Extras<R>& x = extras[0];
  const bool no_clip_divisors =
      std::all_of(extras.begin(), extras.end(),
                  [](const rmsprop_math::Extras<R>& e) { return e.clip_divisor == R(1); });
  if (no_clip_divisors && x.keeps_gradient) return rmsprop_math::kNoTransform;
  return no_clip_divisors && rmsprop_math::IsPowerOfTwo(x.grad_divisor)
             ? rmsprop_math::kMultiplyTransform
             : rmsprop_math::kFullTransform;
}

template <typename T>
struct DenseApplyRMSProp<CPUDevice, T> {
  DeviceStatus operator()(const CPUDevice& d, const DenseUpdate<T>* updates,
                          int num_updates, const HyperOf<T>& h,
                          const ExtrasOf<T>* x) {
    rmsprop_math::VariantChoice choice = updates[0].slots.Choice(x);
    std::vector<ExtrasOf<T>> extras;
    if (x != nullptr) {
      extras.assign(num_updates, *x);
      using R = decltype(x->clip_divisor);
      for (int i = 0; i < num_updates; ++i) {
        extras[i].clip_divisor = static_cast<R>(updates[i].clip_divisor);
      }
      choice.transform = GradientTransformOf(extras);
    }
    const UpdateRangeFn<T, T> update_range = SelectUpdateRange<T, T>(choice);
    const ExtrasOf<T> none = {};
    ShardUpdates(d, updates, num_updates, [&](int i, int64_t lo, int64_t hi) {
      update_range(updates[i].slots, updates[i].grad, lo, hi, h,
                   x != nullptr ? extras[i] : none);
    });
    return {};
  }
};

template <typename T>
struct SquaredNorms<CPUDevice, T> {
  DeviceStatus operator()(const CPUDevice& d, const T* const* grads,
                          const int64_t* sizes, int num_grads, double divisor,
                          double* out) {
    using C = ComputeType<T>;
    std::vector<int64_t> first_block(num_grads + 1, 0);
    for (int i = 0; i < num_grads; ++i) {
      first_block[i + 1] = first_block[i] + (sizes[i] + kNormBlock - 1) / kNormBlock;
    }
    std::vector<double> block_sums(first_block.back(), 0.0);
    const C div = static_cast<C>(divisor);
    d.parallelFor(first_block.back(),
                  Eigen::TensorOpCost(sizeof(T) * kNormBlock, 0, 2.0 * kNormBlock),
                  [&](Eigen::Index begin, Eigen::Index end) {
                    for (Eigen::Index b = begin; b < end; ++b) {
                      const int i = static_cast<int>(
                          std::upper_bound(first_block.begin(), first_block.end(), b) -
                          first_block.begin() - 1);
                      const int64_t lo = (b - first_block[i]) * kNormBlock;
                      const int64_t hi = std::min<int64_t>(sizes[i], lo + kNormBlock);
                      block_sums[b] = cpu::SumOfSquares<T>(grads[i], lo, hi, div);
                    }
                  });
    for (int i = 0; i < num_grads; ++i) {
      double sum = 0.0;
      for (int64_t b = first_block[i]; b < first_block[i + 1]; ++b) sum += block_sums[b];
      out[i] = sum;
    }
    return {};
  }
};

// Rows are scattered over tables far larger than the caches; asking for the
// rows a few groups ahead hides most of the memory latency.
template <typename T>
RMSPROP_PREFETCHER inline void PrefetchRow(const SlotPointers<T>& slots, int64_t offset,
                        int64_t row_bytes) {
  for (int64_t b = 0; b < row_bytes; b += 64) {
    const char* at = reinterpret_cast<const char*>(slots.var + offset) + b;
    __builtin_prefetch(at, 1);
    __builtin_prefetch(reinterpret_cast<const char*>(slots.ms + offset) + b, 1);
    if (slots.mg) __builtin_prefetch(reinterpret_cast<const char*>(slots.mg + offset) + b, 1);
    if (slots.mom) __builtin_prefetch(reinterpret_cast<const char*>(slots.mom + offset) + b, 1);
  }
}

template <typename T, typename Tindex>
struct SparseApplyRMSProp<CPUDevice, T, Tindex> {
  int64_t operator()(const CPUDevice& d, const SlotPointers<T>& slots,
                     const T* grad, const Tindex* indices, int64_t num_indices,
                     int64_t num_rows, int64_t row_size, const HyperOf<T>& h) {
    for (int64_t i = 0; i < num_indices; ++i) {
      if (indices[i] < 0 || indices[i] >= num_rows) return i;
    }
    if (num_indices == 0 || row_size == 0) return -1;
    if (num_rows > (int64_t{1} << 32) || num_indices >= (int64_t{1} << 32)) {
      return SortedFallback(d, slots, grad, indices, num_indices, row_size, h);
    }
    const RowGroups groups = GroupPositionsByRow(indices, num_indices, num_rows);
    ApplyGroups(d, slots, grad, groups.rows, groups.starts,
                [&](int64_t k) { return static_cast<int64_t>(groups.order[k]); },
                row_size, h);
    return -1;
  }

 private:
  using C = ComputeType<T>;
  static constexpr int kPrefetchDistance = 8;

  // One update per group: the gradient row itself, or the sum of the rows of
  // its duplicate positions in position order.
  template <typename PositionAt>
  static void ApplyGroups(const CPUDevice& d, const SlotPointers<T>& slots,
                          const T* grad, const std::vector<int64_t>& rows,
                          const std::vector<int64_t>& starts,
                          PositionAt position_at, int64_t row_size,
                          const HyperOf<T>& h) {
    // A sparse update has no extras.
    const UpdateRangeFn<T, T> update_row = SelectUpdateRange<T, T, false>(slots.Choice());
    const UpdateRangeFn<T, C> update_summed_row =
        SelectUpdateRange<T, C, false>(slots.Choice());
    const ExtrasOf<T> unused = {};
    const int64_t num_groups = static_cast<int64_t>(rows.size());
    const int64_t row_bytes = row_size * static_cast<int64_t>(sizeof(T));
    const Eigen::TensorOpCost row_cost =
        ScatteredElementCost(slots) * static_cast<double>(row_size);
    d.parallelFor(num_groups, row_cost, [&](Eigen::Index first, Eigen::Index last) {
      std::vector<C> summed;
      for (Eigen::Index g = first; g < last; ++g) {
        if (g + kPrefetchDistance < last) {
          PrefetchRow(slots, rows[g + kPrefetchDistance] * row_size, row_bytes);
        }
        const SlotPointers<T> row_slots = slots.At(rows[g] * row_size);
        const T* first_grad = grad + position_at(starts[g]) * row_size;
        if (starts[g + 1] - starts[g] == 1) {
          update_row(row_slots, first_grad, 0, row_size, h, unused);
          continue;
        }
        summed.resize(row_size);
        for (int64_t j = 0; j < row_size; ++j) summed[j] = static_cast<C>(first_grad[j]);
        for (int64_t k = starts[g] + 1; k < starts[g + 1]; ++k) {
          const T* g_row = grad + position_at(k) * row_size;
          for (int64_t j = 0; j < row_size; ++j) summed[j] += static_cast<C>(g_row[j]);
        }
        update_summed_row(row_slots, summed.data(), 0, row_size, h, unused);
      }
    });
  }

  // Tables of more than 2^32 rows: a comparison sort of (row, position).
  static int64_t SortedFallback(const CPUDevice& d, const SlotPointers<T>& slots,
                                const T* grad, const Tindex* indices,
                                int64_t n, int64_t row_size, const HyperOf<T>& h) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [indices](int64_t a, int64_t b) {
      return indices[a] < indices[b];
    });
    std::vector<int64_t> rows, starts;
    for (int64_t k = 0; k < n; ++k) {
      if (k == 0 || indices[order[k]] != indices[order[k - 1]]) {
        starts.push_back(k);
        rows.push_back(static_cast<int64_t>(indices[order[k]]));
      }
    }
    starts.push_back(n);
    ApplyGroups(d, slots, grad, rows, starts, [&](int64_t k) { return order[k]; },
                row_size, h);
    return -1;
  }
};

}  // namespace functor

// Instantiated once, in cpu_kernels.cc.
#define RMSPROP_CPU_FUNCTORS(PREFIX, T)                                      \
  PREFIX template struct functor::DenseApplyRMSProp<CPUDevice, T>;          \
  PREFIX template struct functor::SparseApplyRMSProp<CPUDevice, T, int32_t>; \
  PREFIX template struct functor::SparseApplyRMSProp<CPUDevice, T, int64_t>;
#define RMSPROP_CPU_NORMS_FUNCTOR(PREFIX, T) \
  PREFIX template struct functor::SquaredNorms<CPUDevice, T>;

#define RMSPROP_DECLARE_CPU_FUNCTORS(T) RMSPROP_CPU_FUNCTORS(extern, T)
#define RMSPROP_DECLARE_CPU_NORMS_FUNCTOR(T) RMSPROP_CPU_NORMS_FUNCTOR(extern, T)
RMSPROP_FOR_EACH_DTYPE(RMSPROP_DECLARE_CPU_FUNCTORS)
RMSPROP_FOR_EACH_REAL_DTYPE(RMSPROP_DECLARE_CPU_NORMS_FUNCTOR)
#undef RMSPROP_DECLARE_CPU_FUNCTORS
#undef RMSPROP_DECLARE_CPU_NORMS_FUNCTOR

}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_CPU_FUNCTORS_H_
