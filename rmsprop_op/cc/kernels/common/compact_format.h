// The compact state formats of rmsprop_op/compact_state.py (bfloat16 slots,
// and block-wise int8 slots on dynamic maps) as the fused kernels read and
// write them: the block layout, the maps (compact_tables.h, generated from
// compact_state.py), and one element's code. No TensorFlow here: the CUDA
// half of the GPU library includes it.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FORMAT_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FORMAT_H_

#include <cmath>
#include <cstdint>

#include "rmsprop_op/cc/kernels/common/compact_tables.h"
#include "rmsprop_op/cc/kernels/common/hyperparameters.h"

namespace rmsprop_op {

// How a compact slot is stored: one bfloat16 variable, or codes (uint8 for
// the mean square, int8 for mg and mom) and one float32 scale per block.
enum class StateFormat { kInt8, kBfloat16 };

constexpr int64_t kCompactBlockSize = RMSPROP_COMPACT_BLOCK_SIZE;

// compact_state.block_layout and scales_shape: the variable viewed as
// [rows, columns] (rows = shape[0]); a block is max(1, 256 / columns) whole
// rows, or 256 consecutive elements of one row. Either way a block is one
// contiguous run of elements, and blocks are numbered in memory order
// (block = row_block * column_blocks + column_block, the scales' order).
struct BlockLayout {
  int64_t rows = 0;
  int64_t columns = 0;
  int64_t rows_per_block = 1;
  int64_t columns_per_block = 0;
  int64_t row_blocks = 0;
  int64_t column_blocks = 0;

  RMSPROP_HOST_DEVICE static BlockLayout Of(int64_t rows, int64_t columns) {
    BlockLayout l;
    l.rows = rows;
    l.columns = columns;
    l.rows_per_block = kCompactBlockSize / (columns > 1 ? columns : 1);
    if (l.rows_per_block < 1) l.rows_per_block = 1;
    l.columns_per_block = columns < kCompactBlockSize ? columns : kCompactBlockSize;
    l.row_blocks = (rows + l.rows_per_block - 1) / l.rows_per_block;
    l.column_blocks = l.columns_per_block > 0
                          ? (columns + l.columns_per_block - 1) / l.columns_per_block
                          : 0;
    return l;
  }
  RMSPROP_HOST_DEVICE int64_t num_blocks() const { return row_blocks * column_blocks; }
  // Block b's first element, rows, and columns (its elements: rows x columns).
  RMSPROP_HOST_DEVICE int64_t BlockRows(int64_t b) const {
    const int64_t first = (b / column_blocks) * rows_per_block;
    return rows - first < rows_per_block ? rows - first : rows_per_block;
  }
  RMSPROP_HOST_DEVICE int64_t BlockColumns(int64_t b) const {
    const int64_t first = (b % column_blocks) * columns_per_block;
    return columns - first < columns_per_block ? columns - first : columns_per_block;
  }
  RMSPROP_HOST_DEVICE int64_t BlockOffset(int64_t b) const {
    return (b / column_blocks) * rows_per_block * columns +
           (b % column_blocks) * columns_per_block;
  }
};

// One compact slot's buffers: codes and scales (int8 format), or bits
// (bfloat16 format). Codes are handled as bytes: an int8 code's byte indexes
// the signed decoding table.
struct CompactSlot {
  uint8_t* codes = nullptr;
  float* scales = nullptr;
  uint16_t* bfloat16 = nullptr;
};

// One update of a float32 variable with compact slots; mg and mom are empty
// when the update is not centered or has no momentum slot. ema: the
// variable's EMA slot (float32) when the update has one (the dense ops'
// extras), else null.
struct CompactUpdate {
  StateFormat format;
  float* var;
  const float* grad;
  CompactSlot ms, mg, mom;
  float* ema = nullptr;
  bool centered;
  bool momentum;
  BlockLayout layout;
};

namespace compact {

// A map's arithmetic encoding (compact_state.code_regions), padded to 8
// regions: a padded threshold of 0 is above no x >= 0.
struct CodeRegions {
  float thresholds[8];
  float slopes[8];
  float offsets[8];
  int32_t bases[8];
};

constexpr CodeRegions kUnsignedRegions = {{RMSPROP_COMPACT_UNSIGNED_THRESHOLDS_VALUES},
                                          {RMSPROP_COMPACT_UNSIGNED_SLOPES_VALUES},
                                          {RMSPROP_COMPACT_UNSIGNED_OFFSETS_VALUES},
                                          {RMSPROP_COMPACT_UNSIGNED_BASES_VALUES}};
constexpr CodeRegions kSignedRegions = {{RMSPROP_COMPACT_SIGNED_THRESHOLDS_VALUES},
                                        {RMSPROP_COMPACT_SIGNED_SLOPES_VALUES},
                                        {RMSPROP_COMPACT_SIGNED_OFFSETS_VALUES},
                                        {RMSPROP_COMPACT_SIGNED_BASES_VALUES}};
static_assert(RMSPROP_COMPACT_UNSIGNED_SLOPES_SIZE <= 8 &&
                  RMSPROP_COMPACT_SIGNED_SLOPES_SIZE <= 8,
              "at most 8 regions");

// The code of a magnitude x > 0: its region d counts the thresholds above
// it; then bases[d] + rint(x * slopes[d] - offsets[d]), the product and the
// difference each rounded to float32 (no contraction: -ffp-contract=off,
// nvcc -fmad=false), rint to even.
RMSPROP_HOST_DEVICE int MagnitudeCode(const CodeRegions& r, float x) {
  int d = 0;
  for (int j = 0; j < 8; ++j) d += x < r.thresholds[j] ? 1 : 0;
  const float product = x * r.slopes[d];
  return r.bases[d] + static_cast<int>(rintf(product - r.offsets[d]));
}

// The mean square's code of `value`, x = value / scale: x's if x > 0, and at
// least 1 where the value (not x, which may underflow to 0) is positive;
// NaN codes 0.
RMSPROP_HOST_DEVICE int UnsignedCode(const CodeRegions& r, float value, float x) {
  const int code = x > 0.0f ? MagnitudeCode(r, x) : 0;
  return value > 0.0f && code < 1 ? 1 : code;
}

// A signed slot's code: |x|'s with x's sign; NaN codes 0.
RMSPROP_HOST_DEVICE int SignedCode(const CodeRegions& r, float x) {
  const float magnitude_of_x = x < 0.0f ? -x : x;
  const int magnitude = magnitude_of_x > 0.0f ? MagnitudeCode(r, magnitude_of_x) : 0;
  return x < 0.0f ? -magnitude : magnitude;
}

}  // namespace compact
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FORMAT_H_
