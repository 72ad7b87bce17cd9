// The compact state formats of rmsprop_op/compact_state.py (bfloat16 slots,
// and block-wise int8 slots of 8-bit floats sharing a block's exponent) as
// the fused kernels read and write them: the block layout, the constants
// (compact_tables.h, generated from compact_state.py), and one element's
// code. No TensorFlow here: the CUDA
// half of the GPU library includes it.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FORMAT_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FORMAT_H_

#include <cmath>
#include <cstdint>
#include <cstring>

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

// compact_state.py's int8 codes: 8-bit floats (3 mantissa bits) of
// x = value / scale in [0, 1], x computed without a division per element.
constexpr int kMantissaBits = RMSPROP_COMPACT_MANTISSA_BITS;
constexpr int kIndexShift = 23 - kMantissaBits;
constexpr int32_t kUnsignedTop = RMSPROP_COMPACT_UNSIGNED_TOP;
constexpr int32_t kSignedTop = RMSPROP_COMPACT_SIGNED_TOP;
constexpr int32_t kOneIndex = 127 << kMantissaBits;  // x = 1.0
constexpr uint32_t kSmallestNormalBits = 0x00800000u;
constexpr uint32_t kInfinityBits = 0x7f800000u;
constexpr uint32_t kOneBits = 0x3f800000u;

RMSPROP_HOST_DEVICE uint32_t BitsOfFloat(float x) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(x);
#else
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
#endif
}
RMSPROP_HOST_DEVICE float FloatOfBits(uint32_t b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, sizeof(x));
  return x;
#endif
}

// A block is scaled when its scale is a normal float32.
RMSPROP_HOST_DEVICE bool IsScaled(uint32_t scale_bits) {
  return scale_bits >= kSmallestNormalBits && scale_bits < kInfinityBits;
}

// What encoding needs of a scaled block's scale s = 2**p * f, f in [1, 2):
// p in the exponent field's units, and fl(1 / f).
struct Divisor {
  int32_t exponent_bits;
  float reciprocal;
};
RMSPROP_HOST_DEVICE Divisor DivisorOf(uint32_t scale_bits) {
  const float fraction = FloatOfBits((scale_bits & 0x007fffffu) | kOneBits);
  return {(static_cast<int32_t>(scale_bits >> 23) - 127) * (1 << 23), 1.0f / fraction};
}

// x's bits for a magnitude's bits: |value| / 2**p exactly by its exponent
// field (0 for a magnitude, or a quotient, below the normal floats), times
// fl(1 / f).
RMSPROP_HOST_DEVICE uint32_t QuotientBits(uint32_t magnitude_bits, const Divisor& d) {
  if (magnitude_bits < kSmallestNormalBits) return 0u;
  const int32_t y = static_cast<int32_t>(magnitude_bits) - d.exponent_bits;
  const float y_value = y >= static_cast<int32_t>(kSmallestNormalBits)
                            ? FloatOfBits(static_cast<uint32_t>(y)) : 0.0f;
  return BitsOfFloat(y_value * d.reciprocal);
}

// The code magnitude of x (its bits): the nearest 3-bit-mantissa float,
// ties away from zero, counted down from the top code at x = 1; at most 0
// below code 1's binade.
RMSPROP_HOST_DEVICE int32_t RoundedCode(uint32_t x_bits, int32_t top) {
  return static_cast<int32_t>((x_bits + (1u << (kIndexShift - 1))) >> kIndexShift) -
         (kOneIndex - top);
}

// x of code magnitude m > 0.
RMSPROP_HOST_DEVICE float CodeValue(int32_t m, int32_t top) {
  return FloatOfBits(static_cast<uint32_t>(m + kOneIndex - top) << kIndexShift);
}

// Signed slots: below code 1's binade, x codes 1 from half of code 1's x on.
constexpr uint32_t kSignedHalfOfCodeOneBits =
    (static_cast<uint32_t>(kOneIndex - kSignedTop + 1) << kIndexShift) - (1u << 23);

// The mean square's code of `value` in a block of scale bits `scale_bits`:
// at least 1 where the value is positive (its bits, so also below the
// normal floats), 0 where it is not or is NaN (whatever its sign bit).
RMSPROP_HOST_DEVICE int UnsignedCode(float value, uint32_t scale_bits) {
  const uint32_t bits = BitsOfFloat(value);
  if (static_cast<int32_t>(bits) <= 0 || bits > kInfinityBits) return 0;
  const int32_t m = IsScaled(scale_bits)
                        ? RoundedCode(QuotientBits(bits, DivisorOf(scale_bits)), kUnsignedTop)
                        : 0;
  return m < 1 ? 1 : m;
}

// A signed slot's code: the nearest magnitude's (0 or code 1 below code
// 1's binade), with the value's sign bit.
RMSPROP_HOST_DEVICE int SignedCode(float value, uint32_t scale_bits) {
  const uint32_t bits = BitsOfFloat(value);
  int32_t m = 0;
  if (IsScaled(scale_bits)) {
    const uint32_t x_bits = QuotientBits(bits & 0x7fffffffu, DivisorOf(scale_bits));
    m = RoundedCode(x_bits, kSignedTop);
    if (m <= 0) m = x_bits >= kSignedHalfOfCodeOneBits ? 1 : 0;
  }
  return (bits >> 31) != 0 ? -m : m;
}

// The value an unscaled block reads as: NaN for a NaN or infinite scale, else 0.
RMSPROP_HOST_DEVICE float UnscaledValue(uint32_t scale_bits) {
  return (scale_bits & 0x7fffffffu) >= kInfinityBits ? FloatOfBits(0x7fc00000u) : 0.0f;
}

RMSPROP_HOST_DEVICE float DecodeUnsigned(uint8_t code, uint32_t scale_bits) {
  if (!IsScaled(scale_bits)) return UnscaledValue(scale_bits);
  return code == 0 ? 0.0f : CodeValue(code, kUnsignedTop) * FloatOfBits(scale_bits);
}

// An int8 code's byte: -128 reads as -127.
RMSPROP_HOST_DEVICE float DecodeSigned(uint8_t byte, uint32_t scale_bits) {
  if (!IsScaled(scale_bits)) return UnscaledValue(scale_bits);
  const int code = static_cast<int8_t>(byte);
  const int32_t m = code < 0 ? (code == -128 ? 127 : -code) : code;
  const float x = m == 0 ? 0.0f : CodeValue(m, kSignedTop);
  return (code < 0 ? -x : x) * FloatOfBits(scale_bits);
}

// With centered, the mean square as the update reads it: at least the mean
// gradient's square. The two are stored (and rounded) apart, and a variance
// made negative by their rounding would divide by a zero root; from
// consistent state the update keeps ms >= mg^2 (up to float32 rounding).
// NaN stays NaN.
RMSPROP_HOST_DEVICE float ConsistentMeanSquare(float ms, float mg) {
  const float square = mg * mg;
  return ms < square ? square : ms;
}

}  // namespace compact
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FORMAT_H_
