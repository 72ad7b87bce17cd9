// Grouping the positions of a sparse update's indices by row, for the CPU
// functor: one update per distinct row, duplicates in position order.
#ifndef RMSPROP_OP_CC_KERNELS_CPU_SPARSE_ROW_GROUPS_H_
#define RMSPROP_OP_CC_KERNELS_CPU_SPARSE_ROW_GROUPS_H_

#include <cstdint>
#include <memory>
#include <vector>

// For a function that only asks for memory ahead (__builtin_prefetch): a
// prefetch has no side effects, so GCC finds such a function pure and drops
// its calls, inlined or not, unless it is kept out of interprocedural
// analysis (tests/test_compiled_code.py checks the library).
#if defined(__GNUC__) && !defined(__clang__)
#define RMSPROP_PREFETCHER __attribute__((noipa))
#else
#define RMSPROP_PREFETCHER __attribute__((noinline))
#endif

namespace rmsprop_op {
namespace cpu {

// Index positions grouped by row: order[starts[g] .. starts[g+1]) are the
// positions naming rows[g], in increasing position order.
struct RowGroups {
  std::vector<int64_t> rows;
  std::vector<int64_t> starts;
  std::vector<uint32_t> order;
};

// Stable LSD radix sort of (row, position) pairs by row: linear time, and
// stability keeps equal rows in position order, which makes duplicate sums
// deterministic. Digits of at most 8 bits (as few passes as the row count
// needs): with wider digits the scatter writes to more buckets than L1 holds
// lines for, which measured twice as slow at a few thousand indices.
template <typename Tindex>
inline RowGroups GroupPositionsByRow(const Tindex* indices, int64_t n,
                              int64_t num_rows) {
  constexpr int kMaxDigitBits = 8;
  const int row_bits =
      num_rows <= 1 ? 0 : 64 - __builtin_clzll(static_cast<uint64_t>(num_rows - 1));
  const int passes = (row_bits + kMaxDigitBits - 1) / kMaxDigitBits;
  const int digit_bits = passes == 0 ? 0 : (row_bits + passes - 1) / passes;
  const uint32_t buckets = 1u << digit_bits;
  // Row in the upper 32 bits, position in the lower (callers ensure both fit).
  std::unique_ptr<uint64_t[]> pairs(new uint64_t[n]);
  std::unique_ptr<uint64_t[]> scratch(new uint64_t[n]);
  std::vector<uint32_t> count(static_cast<size_t>(passes) * buckets, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t row = static_cast<uint64_t>(indices[i]);
    pairs[i] = (row << 32) | static_cast<uint64_t>(i);
    for (int p = 0; p < passes; ++p) {
      ++count[p * buckets + ((row >> (p * digit_bits)) & (buckets - 1))];
    }
  }
  for (int p = 0; p < passes; ++p) {
    uint32_t* offset = count.data() + p * buckets;
    const int shift = 32 + p * digit_bits;
    // Every row has the same digit here: this pass would keep the order.
    if (offset[(pairs[0] >> shift) & (buckets - 1)] == n) continue;
    uint32_t total = 0;
    for (uint32_t b = 0; b < buckets; ++b) {
      const uint32_t here = offset[b];
      offset[b] = total;
      total += here;
    }
    for (int64_t i = 0; i < n; ++i) {
      scratch[offset[(pairs[i] >> shift) & (buckets - 1)]++] = pairs[i];
    }
    pairs.swap(scratch);
  }
  RowGroups groups;
  groups.order.resize(n);
  groups.rows.reserve(n);
  groups.starts.reserve(n + 1);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t row = static_cast<int64_t>(pairs[k] >> 32);
    groups.order[k] = static_cast<uint32_t>(pairs[k]);
    if (k == 0 || row != groups.rows.back()) {
      groups.starts.push_back(k);
      groups.rows.push_back(row);
    }
  }
  groups.starts.push_back(n);
  return groups;
}


}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_SPARSE_ROW_GROUPS_H_
