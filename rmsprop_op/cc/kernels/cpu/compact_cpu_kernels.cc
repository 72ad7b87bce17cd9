// CPU functors and kernel registrations of the fused RMSProp ops with
// compact state (compact_loops.h does the work of one block).
#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "rmsprop_op/cc/kernels/common/compact_format.h"
#include "rmsprop_op/cc/kernels/common/compact_functors.h"
#include "rmsprop_op/cc/kernels/common/compact_op_kernels.h"
#include "rmsprop_op/cc/kernels/common/hyperparameters.h"
#include "rmsprop_op/cc/kernels/common/kernel_registration.h"
#include "rmsprop_op/cc/kernels/cpu/compact_loops.h"
#include "rmsprop_op/cc/kernels/cpu/sparse_row_groups.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {

using CPUDevice = Eigen::ThreadPoolDevice;

namespace {

// Cycles per element of a block on one core (decoding, the update and
// encoding of two int8 slots: about 2.3 measured on an AMD Zen 3 with AVX2;
// more in the baseline build), for the thread pool's sharding.
constexpr double kCompactCyclesPerElement = 3.0;

Eigen::TensorOpCost BlockCost(const CompactUpdate& u, double elements) {
  const int slots = 1 + u.centered + u.momentum;
  const double state_bytes = u.format == StateFormat::kInt8 ? 1.0 : 2.0;
  return Eigen::TensorOpCost(elements * (8.0 + slots * state_bytes),
                             elements * (4.0 + slots * state_bytes),
                             elements * kCompactCyclesPerElement);
}

// Positions of a sparse update's indices grouped by row, rows ascending;
// duplicates in position order (cpu::GroupPositionsByRow, or a comparison
// sort where rows or positions do not fit its 32 bits).
struct SortedRows {
  std::vector<int64_t> rows;
  std::vector<int64_t> starts;
  std::vector<int64_t> positions;  // positions[starts[g] .. starts[g + 1]) name rows[g]
};

template <typename Tindex>
SortedRows SortRows(const Tindex* indices, int64_t n, int64_t num_rows) {
  SortedRows out;
  if (num_rows <= (int64_t{1} << 32) && n < (int64_t{1} << 32)) {
    cpu::RowGroups groups = cpu::GroupPositionsByRow(indices, n, num_rows);
    out.rows = std::move(groups.rows);
    out.starts = std::move(groups.starts);
    out.positions.assign(groups.order.begin(), groups.order.end());
    return out;
  }
  out.positions.resize(n);
  std::iota(out.positions.begin(), out.positions.end(), int64_t{0});
  std::stable_sort(out.positions.begin(), out.positions.end(),
                   [indices](int64_t a, int64_t b) { return indices[a] < indices[b]; });
  for (int64_t k = 0; k < n; ++k) {
    const int64_t row = static_cast<int64_t>(indices[out.positions[k]]);
    if (k == 0 || row != out.rows.back()) {
      out.starts.push_back(k);
      out.rows.push_back(row);
    }
  }
  out.starts.push_back(n);
  return out;
}

// Asks for the lines of a run of rows within one row block (var, gradient,
// slots; int8: the block's codes and scales) ahead of its update: a sparse
// update's rows lie far apart, and waiting on each block's cache misses in
// turn took most of its time.
RMSPROP_PREFETCHER void PrefetchRun(const CompactUpdate& u, const SortedRows& sorted,
                                    int64_t g_begin, int64_t g_end) {
  const BlockLayout& l = u.layout;
  constexpr int64_t kLine = 64;
  const int64_t b = sorted.rows[g_begin] / l.rows_per_block;
  const int64_t offset = l.BlockOffset(b);
  const int64_t n = l.BlockRows(b) * l.columns;
  for (const CompactSlot* slot : {&u.ms, &u.mg, &u.mom}) {
    if (slot->scales == nullptr) continue;
    __builtin_prefetch(slot->scales + b);
    for (int64_t at = 0; at < n; at += kLine) __builtin_prefetch(slot->codes + offset + at);
  }
  for (int64_t g = g_begin; g < g_end; ++g) {
    const int64_t row = sorted.rows[g] * l.columns;
    const float* grad = u.grad + sorted.positions[sorted.starts[g]] * l.columns;
    for (int64_t at = 0; at < l.columns; at += kLine / 4) {
      __builtin_prefetch(u.var + row + at);
      __builtin_prefetch(grad + at);
    }
    for (const CompactSlot* slot : {&u.ms, &u.mg, &u.mom}) {
      if (slot->bfloat16 == nullptr) continue;
      for (int64_t at = 0; at < l.columns; at += kLine / 2) {
        __builtin_prefetch(slot->bfloat16 + row + at);
      }
    }
  }
}

}  // namespace

namespace functor {

template <>
struct DenseApplyCompactRMSProp<CPUDevice> {
  DeviceStatus operator()(const CPUDevice& d, const CompactUpdate& u,
                          const rmsprop_math::Hyper<float>& h,
                          const rmsprop_math::Extras<float>* x) {
    const cpu::UpdateBlockFn update_block = cpu::SelectUpdateBlock(u, ChoiceOf(u, x));
    const rmsprop_math::Extras<float> extras = x != nullptr ? *x : rmsprop_math::Extras<float>{};
    const BlockLayout& l = u.layout;
    d.parallelFor(l.num_blocks(), BlockCost(u, kCompactBlockSize),
                  [&](Eigen::Index first, Eigen::Index last) {
                    for (Eigen::Index b = first; b < last; ++b) {
                      const int64_t offset = l.BlockOffset(b);
                      const int64_t n = l.BlockRows(b) * l.BlockColumns(b);
                      const cpu::Segment all = {0, n, u.grad + offset};
                      update_block(u, b, offset, n, &all, 1, h, extras);
                    }
                  });
    return {};
  }
};

template <typename Tindex>
struct SparseApplyCompactRMSProp<CPUDevice, Tindex> {
  int64_t operator()(const CPUDevice& d, const CompactUpdate& u, const Tindex* indices,
                     int64_t num_indices, const rmsprop_math::Hyper<float>& h) {
    const BlockLayout& l = u.layout;
    for (int64_t i = 0; i < num_indices; ++i) {
      if (indices[i] < 0 || indices[i] >= l.rows) return i;
    }
    if (num_indices == 0 || l.num_blocks() == 0) return -1;
    const SortedRows sorted = SortRows(indices, num_indices, l.rows);
    // Runs of rows in one row block: each run is one task, its blocks
    // written by it alone.
    std::vector<int64_t> run_starts;
    for (int64_t g = 0; g < static_cast<int64_t>(sorted.rows.size()); ++g) {
      if (g == 0 || sorted.rows[g] / l.rows_per_block !=
                        sorted.rows[g - 1] / l.rows_per_block) {
        run_starts.push_back(g);
      }
    }
    run_starts.push_back(static_cast<int64_t>(sorted.rows.size()));
    const int64_t num_runs = static_cast<int64_t>(run_starts.size()) - 1;
    // A sparse update has no extras.
    const cpu::UpdateBlockFn update_block = cpu::SelectUpdateBlock(u, ChoiceOf(u));
    const rmsprop_math::Extras<float> no_extras = {};
    const double run_elements = static_cast<double>(l.rows_per_block * l.columns);
    // (A row of more than 128 elements is a block, and a run, of its own:
    // streamed.)
    const bool prefetch = l.rows_per_block > 1;
    d.parallelFor(num_runs, BlockCost(u, run_elements), [&](Eigen::Index first,
                                                            Eigen::Index last) {
      cpu::Segment segments[kCompactBlockSize];
      alignas(64) float sums[kCompactBlockSize];
      for (Eigen::Index run = first; run < last; ++run) {
        const int64_t g_begin = run_starts[run];
        const int64_t g_end = run_starts[run + 1];
        if (prefetch && run + 1 < last) {
          PrefetchRun(u, sorted, run_starts[run + 1], run_starts[run + 2]);
        }
        const int64_t row_block = sorted.rows[g_begin] / l.rows_per_block;
        const int64_t first_row = row_block * l.rows_per_block;
        for (int64_t cb = 0; cb < l.column_blocks; ++cb) {
          const int64_t b = row_block * l.column_blocks + cb;
          const int64_t offset = l.BlockOffset(b);
          const int64_t columns = l.BlockColumns(b);
          const int64_t first_column = cb * l.columns_per_block;
          int num_segments = 0;
          for (int64_t g = g_begin; g < g_end; ++g) {
            // A block of several rows has column_blocks == 1: a row's
            // segment is the whole row.
            const int64_t local = (sorted.rows[g] - first_row) * columns;
            const float* first_grad =
                u.grad + sorted.positions[sorted.starts[g]] * l.columns + first_column;
            const float* grad = first_grad;
            if (sorted.starts[g + 1] - sorted.starts[g] > 1) {
              // Duplicates: summed in position order, as the float32 ops sum them.
              float* sum = sums + local;
              for (int64_t j = 0; j < columns; ++j) sum[j] = first_grad[j];
              for (int64_t k = sorted.starts[g] + 1; k < sorted.starts[g + 1]; ++k) {
                const float* row = u.grad + sorted.positions[k] * l.columns + first_column;
                for (int64_t j = 0; j < columns; ++j) sum[j] += row[j];
              }
              grad = sum;
            }
            segments[num_segments++] = {local, columns, grad};
          }
          update_block(u, b, offset, l.BlockRows(b) * columns, segments, num_segments, h,
                       no_extras);
        }
      }
    });
    return -1;
  }
};

template struct SparseApplyCompactRMSProp<CPUDevice, int32_t>;
template struct SparseApplyCompactRMSProp<CPUDevice, int64_t>;

}  // namespace functor

RMSPROP_REGISTER_COMPACT_DENSE_KERNELS(CPUDevice, ::tensorflow::DEVICE_CPU);
RMSPROP_REGISTER_COMPACT_SPARSE_KERNELS(CPUDevice, ::tensorflow::DEVICE_CPU, int32_t,
                                        SparseApplyCompactRMSPropOp);
RMSPROP_REGISTER_COMPACT_SPARSE_KERNELS(CPUDevice, ::tensorflow::DEVICE_CPU, int64_t,
                                        SparseApplyCompactRMSPropOp);

}  // namespace rmsprop_op
