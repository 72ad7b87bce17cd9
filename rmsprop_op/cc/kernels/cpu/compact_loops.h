// The CPU loops of the updates with compact state: one block at a time,
// decoded into float32 buffers in L1, updated by the float32 element loop
// (element_loops.h, the float32 ops' code; int8 slots' NaNs left as the
// arithmetic gives them), and encoded again.
// AVX2 decodes and encodes 8 elements at a time by compact_format.h's
// arithmetic on float bits (no table, no division per element); the
// baseline build runs the same steps one element at a time. Both give the
// bits of compact_state.py's TensorFlow ops, which run under the same
// flush-to-zero as these loops.
#ifndef RMSPROP_OP_CC_KERNELS_CPU_COMPACT_LOOPS_H_
#define RMSPROP_OP_CC_KERNELS_CPU_COMPACT_LOOPS_H_

#include <immintrin.h>

#include <cstdint>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "rmsprop_op/cc/kernels/common/compact_format.h"
#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/common/variant.h"
#include "rmsprop_op/cc/kernels/cpu/element_loops.h"
#include "rmsprop_op/cc/kernels/cpu/isa.h"
#include "rmsprop_op/cc/kernels/cpu/widen_avx2.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {
namespace cpu {

using compact::BitsOfFloat;
using compact::FloatOfBits;

// A range of a block that an update changes: `length` elements from `local`
// (relative to the block's first element), with their gradients.
// A block's segments lie apart, in ascending order.
struct Segment {
  int64_t local;
  int64_t length;
  const float* grad;
};

// -- Decoding and encoding one block, one element at a time. --------------

template <bool kSigned>
inline void DecodeScalar(const uint8_t* codes, int64_t n, float scale, float* out) {
  const uint32_t s = BitsOfFloat(scale);
  for (int64_t i = 0; i < n; ++i) {
    out[i] = kSigned ? compact::DecodeSigned(codes[i], s) : compact::DecodeUnsigned(codes[i], s);
  }
}

// The block's scale: its largest magnitude, NaN if it holds a NaN. As bits,
// magnitudes order as integers, and every NaN's exceed infinity's.
inline uint32_t LargestMagnitudeBits(const float* v, int64_t begin, int64_t n,
                                     uint32_t largest) {
  for (int64_t i = begin; i < n; ++i) {
    const uint32_t m = BitsOfFloat(v[i]) & 0x7fffffffu;
    largest = m > largest ? m : largest;
  }
  return largest;
}

inline uint32_t ScaleBitsOf(uint32_t largest) {
  return largest > compact::kInfinityBits ? 0x7fc00000u : largest;
}

template <bool kSigned>
inline void EncodeTail(const float* v, int64_t begin, int64_t n, uint32_t scale_bits,
                       uint8_t* codes) {
  for (int64_t i = begin; i < n; ++i) {
    codes[i] = static_cast<uint8_t>(kSigned ? compact::SignedCode(v[i], scale_bits)
                                            : compact::UnsignedCode(v[i], scale_bits));
  }
}

template <bool kSigned>
inline void EncodeScalar(const float* v, int64_t n, uint8_t* codes, float* scale_out) {
  const uint32_t scale_bits = ScaleBitsOf(LargestMagnitudeBits(v, 0, n, 0));
  *scale_out = FloatOfBits(scale_bits);
  EncodeTail<kSigned>(v, 0, n, scale_bits, codes);
}

// -- The same with AVX2, 8 elements at a time. ----------------------------

// 8 values of a scaled block from their codes (DecodeUnsigned or
// DecodeSigned), `s` the block's scale.
template <bool kSigned>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline __m256 DecodeGroupAvx2(
    const uint8_t* codes, __m256 s) {
  constexpr int32_t kTop = kSigned ? compact::kSignedTop : compact::kUnsignedTop;
  const __m256i offset = _mm256_set1_epi32(compact::kOneIndex - kTop);
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes));
  const __m256i c = kSigned ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
  const __m256i m =
      kSigned ? _mm256_min_epi32(_mm256_abs_epi32(c), _mm256_set1_epi32(compact::kSignedTop))
              : c;
  // (sign_epi32 by m >= 0: 0 where m is 0, else unchanged.)
  __m256i x = _mm256_sign_epi32(
      _mm256_slli_epi32(_mm256_add_epi32(m, offset), compact::kIndexShift), m);
  if (kSigned) x = _mm256_or_si256(x, _mm256_and_si256(c, _mm256_set1_epi32(INT32_MIN)));
  return _mm256_mul_ps(_mm256_castsi256_ps(x), s);
}

// (Called, not inlined: the per-block callers are compiled for several
// targets, and an AVX2 function inlines only into AVX2 or wider code.)
template <bool kSigned>
RMSPROP_AVX2_TARGET inline void DecodeAvx2(const uint8_t* codes, int64_t n, float scale,
                                           float* out) {
  const uint32_t scale_bits = BitsOfFloat(scale);
  if (!compact::IsScaled(scale_bits)) {
    const float value = compact::UnscaledValue(scale_bits);
    for (int64_t i = 0; i < n; ++i) out[i] = value;
    return;
  }
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, DecodeGroupAvx2<kSigned>(codes + i, s));
  DecodeScalar<kSigned>(codes + i, n - i, scale, out + i);
}

// compact::UnsignedCode or SignedCode of 8 values of a scaled block (which
// holds no NaN or infinity) from their x's bits.
template <bool kSigned>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline __m256i CodesOfQuotientsAvx2(
    __m256i bits, __m256i x) {
  constexpr int32_t kTop = kSigned ? compact::kSignedTop : compact::kUnsignedTop;
  // RoundedCode by one arithmetic shift: x >= 0, and the code's offset from
  // the index a whole number of steps.
  const __m256i m = _mm256_srai_epi32(
      _mm256_add_epi32(x, _mm256_set1_epi32((1 << (compact::kIndexShift - 1)) -
                                            ((compact::kOneIndex - kTop) << compact::kIndexShift))),
      compact::kIndexShift);
  // sign_epi32 by the value's bits: the code where the value is positive,
  // 0 where its bits are 0, negated where negative (a negative mean
  // square's, then 0 when packed with unsigned saturation; its x was masked).
  if constexpr (!kSigned) {
    return _mm256_sign_epi32(_mm256_max_epi32(m, _mm256_set1_epi32(1)), bits);
  } else {
    // m where m > 0; else 1 from half of code 1 on, else 0.
    const __m256i low = _mm256_abs_epi32(_mm256_cmpgt_epi32(
        x, _mm256_set1_epi32(static_cast<int32_t>(compact::kSignedHalfOfCodeOneBits) - 1)));
    return _mm256_sign_epi32(_mm256_max_epi32(m, low), bits);
  }
}

// x of 8 values by compact::QuotientBits. kOneProduct: as one product by
// fl(1 / f) * 2**-p, a normal float while p <= 125, and rounded as the two
// steps are (the power of two moves no rounding). A quotient y below the
// normal floats stays a subnormal (or 0 under denormals-are-zero): either
// way its x codes 0, as for y = 0. Magnitudes below the normal floats are 0.
template <bool kSigned, bool kOneProduct>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline __m256i QuotientsAvx2(
    __m256i bits, __m256i exponent_bits, __m256 multiplier) {
  const __m256i below_normal =
      _mm256_set1_epi32(static_cast<int32_t>(compact::kSmallestNormalBits) - 1);
  const __m256i all_bits =
      kSigned ? _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff)) : bits;
  const __m256i magnitude_bits =
      _mm256_and_si256(all_bits, _mm256_cmpgt_epi32(all_bits, below_normal));
  const __m256i y =
      kOneProduct ? magnitude_bits
                  : _mm256_max_epi32(_mm256_sub_epi32(magnitude_bits, exponent_bits),
                                     _mm256_setzero_si256());
  return _mm256_castps_si256(_mm256_mul_ps(_mm256_castsi256_ps(y), multiplier));
}

// What QuotientsAvx2 takes for a scaled block of divisor d; kOneProduct
// where UsesOneProduct(d): fl(1 / f) * 2**-p (fl(1 / f) in (0.5, 1]) is a
// normal float for p <= 125.
struct QuotientConstants {
  __m256i exponent_bits;
  __m256 multiplier;
};
inline bool UsesOneProduct(const compact::Divisor& d) {
  return d.exponent_bits <= 125 * (1 << 23);
}
template <bool kOneProduct>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline QuotientConstants
QuotientConstantsOf(const compact::Divisor& d) {
  return {_mm256_set1_epi32(d.exponent_bits),
          _mm256_set1_ps(kOneProduct ? d.reciprocal * compact::FloatOfBits(static_cast<uint32_t>(
                                                          compact::kOneBits - d.exponent_bits))
                                     : d.reciprocal)};
}

// The codes of 32 values of a scaled block, packed to bytes and stored
// together.
template <bool kSigned, bool kOneProduct>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Encode32Avx2(
    const float* v, const QuotientConstants& q, uint8_t* codes) {
  __m256i c[4];
  for (int k = 0; k < 4; ++k) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 8 * k));
    c[k] = CodesOfQuotientsAvx2<kSigned>(
        bits, QuotientsAvx2<kSigned, kOneProduct>(bits, q.exponent_bits, q.multiplier));
  }
  const __m256i words01 = _mm256_packs_epi32(c[0], c[1]);
  const __m256i words23 = _mm256_packs_epi32(c[2], c[3]);
  const __m256i bytes = kSigned ? _mm256_packs_epi16(words01, words23)
                                : _mm256_packus_epi16(words01, words23);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes),
                      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// EncodeAvx2's loop over whole groups of 8 of a scaled block; returns the
// elements done.
template <bool kSigned, bool kOneProduct>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline int64_t EncodeLoopAvx2(
    const float* v, int64_t n, const compact::Divisor& d, uint8_t* __restrict__ codes) {
  const QuotientConstants q = QuotientConstantsOf<kOneProduct>(d);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) Encode32Avx2<kSigned, kOneProduct>(v + i, q, codes + i);
  for (; i + 8 <= n; i += 8) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i));
    const __m256i code = CodesOfQuotientsAvx2<kSigned>(
        bits, QuotientsAvx2<kSigned, kOneProduct>(bits, q.exponent_bits, q.multiplier));
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(code),
                                          _mm256_extracti128_si256(code, 1));
    const __m128i bytes = kSigned ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + i), bytes);
  }
  return i;
}

// The codes of n values in a block of scale bits `scale_bits`.
template <bool kSigned>
RMSPROP_AVX2_TARGET inline void EncodeWithScaleAvx2(
    const float* v, int64_t n, uint32_t scale_bits, uint8_t* codes) {
  int64_t i = 0;
  if (compact::IsScaled(scale_bits)) {
    const compact::Divisor d = compact::DivisorOf(scale_bits);
    i = UsesOneProduct(d) ? EncodeLoopAvx2<kSigned, true>(v, n, d, codes)
                          : EncodeLoopAvx2<kSigned, false>(v, n, d, codes);
  }
  EncodeTail<kSigned>(v, i, n, scale_bits, codes);
}

template <bool kSigned>
RMSPROP_AVX2_TARGET inline void EncodeAvx2(const float* v, int64_t n, uint8_t* codes,
                                           float* scale_out) {
  const __m256i magnitude_mask = _mm256_set1_epi32(0x7fffffff);
  // Four running maxima: one would wait on itself every 8 elements.
  __m256i largest8[4] = {};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i + 8 * k));
      largest8[k] = _mm256_max_epu32(largest8[k], _mm256_and_si256(bits, magnitude_mask));
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i));
    largest8[0] = _mm256_max_epu32(largest8[0], _mm256_and_si256(bits, magnitude_mask));
  }
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_max_epu32(_mm256_max_epu32(largest8[0], largest8[1]),
                                      _mm256_max_epu32(largest8[2], largest8[3])));
  uint32_t largest = 0;
  for (int k = 0; k < 8; ++k) largest = lanes[k] > largest ? lanes[k] : largest;
  const uint32_t scale_bits = ScaleBitsOf(LargestMagnitudeBits(v, i, n, largest));
  *scale_out = FloatOfBits(scale_bits);
  EncodeWithScaleAvx2<kSigned>(v, n, scale_bits, codes);
}

// -- One block. ------------------------------------------------------------

// bfloat16 slots widened and narrowed as the float32 ops' half-precision
// loops do (Eigen's round to nearest even, NaN kept quiet).
RMSPROP_AVX2_TARGET inline void WidenAvx2(const uint16_t* in, float* out, int64_t n) {
  Widen(reinterpret_cast<const Eigen::bfloat16*>(in), out, n);
}
RMSPROP_AVX2_TARGET inline void NarrowAvx2(const float* in, uint16_t* out, int64_t n) {
  Narrow(in, reinterpret_cast<Eigen::bfloat16*>(out), n);
}
template <bool kVector>
__attribute__((always_inline)) inline void WidenBfloat16(const uint16_t* in, float* out,
                                                         int64_t n) {
  if constexpr (kVector) {
    WidenAvx2(in, out, n);
  } else {
    const Eigen::bfloat16* b = reinterpret_cast<const Eigen::bfloat16*>(in);
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(b[i]);
  }
}
template <bool kVector>
__attribute__((always_inline)) inline void NarrowBfloat16(const float* in, uint16_t* out,
                                                          int64_t n) {
  if constexpr (kVector) {
    NarrowAvx2(in, out, n);
  } else {
    Eigen::bfloat16* b = reinterpret_cast<Eigen::bfloat16*>(out);
    for (int64_t i = 0; i < n; ++i) b[i] = static_cast<Eigen::bfloat16>(in[i]);
  }
}

// compact::ConsistentMeanSquare of n decoded elements (vectorized by the
// compiler in the caller's target).
__attribute__((always_inline)) inline void ConsistentMeanSquares(float* __restrict__ ms,
                                                                 const float* __restrict__ mg,
                                                                 int64_t n) {
  for (int64_t i = 0; i < n; ++i) ms[i] = compact::ConsistentMeanSquare(ms[i], mg[i]);
}

// One slot's block decoded into `out`, or encoded from `in`.
template <bool kVector, bool kSigned>
__attribute__((always_inline)) inline void DecodeBlock(const CompactSlot& slot, int64_t block,
                                                       int64_t offset, int64_t n, float* out) {
  if constexpr (kVector) {
    DecodeAvx2<kSigned>(slot.codes + offset, n, slot.scales[block], out);
  } else {
    DecodeScalar<kSigned>(slot.codes + offset, n, slot.scales[block], out);
  }
}
template <bool kVector, bool kSigned>
__attribute__((always_inline)) inline void EncodeBlock(const float* in, const CompactSlot& slot,
                                                       int64_t block, int64_t offset, int64_t n) {
  if constexpr (kVector) {
    EncodeAvx2<kSigned>(in, n, slot.codes + offset, slot.scales + block);
  } else {
    EncodeScalar<kSigned>(in, n, slot.codes + offset, slot.scales + block);
  }
}

// -- Blocks of several rows, some of them not updated (sparse updates). ----

// The largest code magnitude of n codes. A signed byte -128 (read as -127,
// encoded again as -127) counts as 128: its CodeValue exceeds the scale, so
// its block never keeps its codes.
template <bool kSigned>
__attribute__((always_inline)) inline int LargestCodeMagnitude(const uint8_t* codes, int64_t n) {
  int largest = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int c = kSigned ? static_cast<int8_t>(codes[i]) : codes[i];
    const int m = c < 0 ? -c : c;
    largest = m > largest ? m : largest;
  }
  return largest;
}

// Whether every code of a block of scale bits `scale_bits` encodes again to
// itself: the block is scaled and code 1 reads as a normal float (smaller
// values would flush to 0). A code's value is the scale times a float of 3
// mantissa bits, rounded once; encoding it misses the code's x by a few
// ulps, far from half a code.
inline bool CodesRoundTrip(uint32_t scale_bits, int32_t top) {
  return compact::IsScaled(scale_bits) &&
         BitsOfFloat(compact::CodeValue(1, top) * FloatOfBits(scale_bits)) >=
             compact::kSmallestNormalBits;
}

template <bool kVector, bool kSigned>
__attribute__((always_inline)) inline void EncodeWithScale(const float* v, int64_t n,
                                                           uint32_t scale_bits, uint8_t* codes) {
  if constexpr (kVector) {
    EncodeWithScaleAvx2<kSigned>(v, n, scale_bits, codes);
  } else {
    EncodeTail<kSigned>(v, 0, n, scale_bits, codes);
  }
}

// EncodeBlock of a block of which only the segments changed, `values`
// holding the segments' values (at their places) and nothing else. The
// codes outside the segments keep where a whole encoding would give them
// again: where they are all 0 (0 at any finite scale), or where they round
// trip and the block's scale stays. Then only the segments are encoded;
// else the rest is decoded and the whole block encoded. Codes and scale
// are the same either way.
template <bool kVector, bool kSigned>
__attribute__((always_inline)) inline void EncodeSegmentsOfBlock(
    float* values, const CompactSlot& slot, int64_t block, int64_t offset, int64_t n,
    const Segment* segments, int num_segments) {
  constexpr int32_t kTop = kSigned ? compact::kSignedTop : compact::kUnsignedTop;
  const uint8_t* codes = slot.codes + offset;
  const uint32_t old_bits = BitsOfFloat(slot.scales[block]);
  int untouched = 0;       // the largest code magnitude outside the segments
  uint32_t touched = 0;    // the largest magnitude's bits in them
  int64_t next = 0;
  for (int s = 0; s < num_segments; ++s) {
    const int m = LargestCodeMagnitude<kSigned>(codes + next, segments[s].local - next);
    untouched = m > untouched ? m : untouched;
    touched = LargestMagnitudeBits(values + segments[s].local, 0, segments[s].length, touched);
    next = segments[s].local + segments[s].length;
  }
  const int last = LargestCodeMagnitude<kSigned>(codes + next, n - next);
  untouched = last > untouched ? last : untouched;
  bool codes_keep = false;
  uint32_t scale_bits = 0;
  if (untouched == 0 && (old_bits & 0x7fffffffu) < compact::kInfinityBits) {
    scale_bits = ScaleBitsOf(touched);
    codes_keep = true;
  } else if (untouched >= 1 && CodesRoundTrip(old_bits, kTop)) {
    // Decoding is monotonic in the code's magnitude.
    const uint32_t largest_untouched =
        BitsOfFloat(compact::CodeValue(untouched, kTop) * FloatOfBits(old_bits));
    scale_bits = ScaleBitsOf(touched > largest_untouched ? touched : largest_untouched);
    codes_keep = scale_bits == old_bits;
  }
  if (!codes_keep) {
    next = 0;
    for (int s = 0; s < num_segments; ++s) {
      DecodeBlock<kVector, kSigned>(slot, block, offset + next, segments[s].local - next,
                                    values + next);
      next = segments[s].local + segments[s].length;
    }
    DecodeBlock<kVector, kSigned>(slot, block, offset + next, n - next, values + next);
    EncodeBlock<kVector, kSigned>(values, slot, block, offset, n);
    return;
  }
  slot.scales[block] = FloatOfBits(scale_bits);
  for (int s = 0; s < num_segments; ++s) {
    EncodeWithScale<kVector, kSigned>(values + segments[s].local, segments[s].length,
                                      scale_bits, slot.codes + offset + segments[s].local);
  }
}

// Block `block` (n elements from `offset`) of the update: the segments
// change, and every element of the block is encoded again (int8); a
// bfloat16 slot has no blocks, and only the segments are read and written.
// kVector: the AVX2 steps (in AVX2 and AVX-512 code).
template <typename V, StateFormat kFormat, bool kVector>
__attribute__((always_inline)) inline void UpdateBlockBody(
    const CompactUpdate& u, int64_t block, int64_t offset, int64_t n, const Segment* segments,
    int num_segments, const rmsprop_math::Hyper<float>& h, const rmsprop_math::Extras<float>& x) {
  alignas(64) float ms[kCompactBlockSize];
  alignas(64) float mg[kCompactBlockSize];
  alignas(64) float mom[kCompactBlockSize];
  if constexpr (kFormat == StateFormat::kInt8) {
    // A block the segments do not cover (a sparse update's): only the
    // segments decoded, and encoded by EncodeSegmentsOfBlock. Not centered:
    // ConsistentMeanSquares changes elements outside the segments too.
    int64_t covered = 0;
    for (int s = 0; s < num_segments; ++s) covered += segments[s].length;
    const bool segments_only = !V::kCentered && covered < n;
    // (No lambdas: they would not inherit the caller's target.)
    if (segments_only) {
      for (int s = 0; s < num_segments; ++s) {
        const int64_t at = segments[s].local;
        const int64_t len = segments[s].length;
        DecodeBlock<kVector, false>(u.ms, block, offset + at, len, ms + at);
        if (V::kMomentum) DecodeBlock<kVector, true>(u.mom, block, offset + at, len, mom + at);
      }
    } else {
      DecodeBlock<kVector, false>(u.ms, block, offset, n, ms);
      if (V::kCentered) {
        DecodeBlock<kVector, true>(u.mg, block, offset, n, mg);
        ConsistentMeanSquares(ms, mg, n);
      }
      if (V::kMomentum) DecodeBlock<kVector, true>(u.mom, block, offset, n, mom);
    }
    for (int s = 0; s < num_segments; ++s) {
      const int64_t at = segments[s].local;
      const SlotPointers<float> slots = {u.var + offset + at, ms + at, mg + at, mom + at,
                                         V::kEma ? u.ema + offset + at : nullptr};
      UpdateElements<V, float, float, /*kCanonicalSlots=*/false>(slots, segments[s].grad, 0,
                                                                segments[s].length, h, x);
    }
    if (segments_only) {
      EncodeSegmentsOfBlock<kVector, false>(ms, u.ms, block, offset, n, segments, num_segments);
      if (V::kMomentum) {
        EncodeSegmentsOfBlock<kVector, true>(mom, u.mom, block, offset, n, segments,
                                             num_segments);
      }
    } else {
      EncodeBlock<kVector, false>(ms, u.ms, block, offset, n);
      if (V::kCentered) EncodeBlock<kVector, true>(mg, u.mg, block, offset, n);
      if (V::kMomentum) EncodeBlock<kVector, true>(mom, u.mom, block, offset, n);
    }
  } else {
    for (int s = 0; s < num_segments; ++s) {
      const int64_t at = offset + segments[s].local;
      const int64_t len = segments[s].length;
      WidenBfloat16<kVector>(u.ms.bfloat16 + at, ms, len);
      if (V::kCentered) {
        WidenBfloat16<kVector>(u.mg.bfloat16 + at, mg, len);
        ConsistentMeanSquares(ms, mg, len);
      }
      if (V::kMomentum) WidenBfloat16<kVector>(u.mom.bfloat16 + at, mom, len);
      const SlotPointers<float> slots = {u.var + at, ms, mg, mom,
                                         V::kEma ? u.ema + at : nullptr};
      UpdateElements<V, float, float>(slots, segments[s].grad, 0, len, h, x);
      NarrowBfloat16<kVector>(ms, u.ms.bfloat16 + at, len);
      if (V::kCentered) NarrowBfloat16<kVector>(mg, u.mg.bfloat16 + at, len);
      if (V::kMomentum) NarrowBfloat16<kVector>(mom, u.mom.bfloat16 + at, len);
    }
  }
}

using UpdateBlockFn = void (*)(const CompactUpdate&, int64_t, int64_t, int64_t,
                               const Segment*, int, const rmsprop_math::Hyper<float>&,
                               const rmsprop_math::Extras<float>&);

template <typename V, StateFormat kFormat>
RMSPROP_AVX512_TARGET void UpdateBlockAvx512(const CompactUpdate& u, int64_t block,
                                             int64_t offset, int64_t n, const Segment* s,
                                             int num, const rmsprop_math::Hyper<float>& h,
                                             const rmsprop_math::Extras<float>& x) {
  UpdateBlockBody<V, kFormat, true>(u, block, offset, n, s, num, h, x);
}
template <typename V, StateFormat kFormat>
RMSPROP_AVX2_TARGET void UpdateBlockAvx2(const CompactUpdate& u, int64_t block,
                                         int64_t offset, int64_t n, const Segment* s,
                                         int num, const rmsprop_math::Hyper<float>& h,
                                         const rmsprop_math::Extras<float>& x) {
  UpdateBlockBody<V, kFormat, true>(u, block, offset, n, s, num, h, x);
}
template <typename V, StateFormat kFormat>
void UpdateBlockBaseline(const CompactUpdate& u, int64_t block, int64_t offset, int64_t n,
                         const Segment* s, int num, const rmsprop_math::Hyper<float>& h,
                         const rmsprop_math::Extras<float>& x) {
  UpdateBlockBody<V, kFormat, false>(u, block, offset, n, s, num, h, x);
}

// The block loop for this update's variant (`choice`) and format on this
// processor.
inline UpdateBlockFn SelectUpdateBlock(const CompactUpdate& u,
                                       const rmsprop_math::VariantChoice& choice) {
  const Isa isa = CurrentIsa();
  return rmsprop_math::DispatchVariant<rmsprop_math::ExtrasDispatch::kCompiledGeneralGradient>(
      choice, [&](auto variant) -> UpdateBlockFn {
        using V = decltype(variant);
        auto of_format = [&](auto format) -> UpdateBlockFn {
          constexpr StateFormat kFormat = decltype(format)::value;
          switch (isa) {
            case Isa::kAvx512:
              return &UpdateBlockAvx512<V, kFormat>;
            case Isa::kAvx2:
              return &UpdateBlockAvx2<V, kFormat>;
            default:
              return &UpdateBlockBaseline<V, kFormat>;
          }
        };
        if (u.format == StateFormat::kInt8) {
          return of_format(std::integral_constant<StateFormat, StateFormat::kInt8>());
        }
        return of_format(std::integral_constant<StateFormat, StateFormat::kBfloat16>());
      });
}

}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_COMPACT_LOOPS_H_
