// The CPU loops of the updates with compact state: one block at a time,
// decoded into float32 buffers in L1, updated by the float32 element loop
// (element_loops.h, the same code as the float32 ops), and encoded again.
// AVX2 decodes 8 elements at a time (table entries read with scalar loads)
// and encodes 8 at a time by the arithmetic of compact_format.h, with no
// table lookups; the baseline build runs the same steps one element at a
// time. Both give the bits of compact_state.py's TensorFlow ops, which run
// under the same flush-to-zero as these loops.
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

inline uint32_t BitsOf(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}
inline float FloatOf(uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof(x));
  return x;
}

// The maps of compact_tables.h, as the loops read them: by a code's byte.
struct CompactTables {
  float unsigned_decode[256];
  float signed_decode[256];  // int8 code c at byte (uint8_t)c: sign(c) * magnitude
  CompactTables() {
    static constexpr float kUnsigned[RMSPROP_COMPACT_UNSIGNED_MAP_SIZE] = {
        RMSPROP_COMPACT_UNSIGNED_MAP_VALUES};
    static constexpr float kMagnitudes[RMSPROP_COMPACT_SIGNED_MAGNITUDES_SIZE] = {
        RMSPROP_COMPACT_SIGNED_MAGNITUDES_VALUES};
    static_assert(RMSPROP_COMPACT_UNSIGNED_MAP_SIZE == 256 &&
                      RMSPROP_COMPACT_SIGNED_MAGNITUDES_SIZE == 128,
                  "one table entry per code");
    for (int c = 0; c < 256; ++c) {
      unsigned_decode[c] = kUnsigned[c];
      const int code = static_cast<int8_t>(c);
      // -128 reads as -127 (compact_state.dequantize).
      const float magnitude = kMagnitudes[code < 0 ? (code == -128 ? 127 : -code) : code];
      signed_decode[c] = code < 0 ? -magnitude : magnitude;
    }
  }
};

inline const CompactTables& Tables() {
  static const CompactTables* tables = new CompactTables();
  return *tables;
}

// A range of a block that an update changes: `length` elements from `local`
// (relative to the block's first element), with their gradients.
struct Segment {
  int64_t local;
  int64_t length;
  const float* grad;
};

// -- Decoding and encoding one block, one element at a time. --------------

inline void DecodeScalar(const uint8_t* codes, int64_t n, float scale,
                         const float* table, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = table[codes[i]] * scale;
}

// The block's scale: its largest magnitude, NaN if it holds a NaN. As bits,
// magnitudes order as integers, and every NaN's exceed infinity's.
inline uint32_t LargestMagnitudeBits(const float* v, int64_t begin, int64_t n,
                                     uint32_t largest) {
  for (int64_t i = begin; i < n; ++i) {
    const uint32_t m = BitsOf(v[i]) & 0x7fffffffu;
    largest = m > largest ? m : largest;
  }
  return largest;
}

// Sets *scale from the largest magnitude's bits; false when every code is 0
// (scale NaN or 0: compact_state normalizes to 0 where scale is not > 0).
inline bool ScaleOf(uint32_t largest, float* scale) {
  *scale = largest > 0x7f800000u ? std::numeric_limits<float>::quiet_NaN()
                                 : FloatOf(largest);
  return *scale > 0.0f;
}

// The code of `value`, x = value / scale (compact_format.h).
inline int EncodeOne(float value, float x, bool is_signed) {
  return is_signed ? compact::SignedCode(compact::kSignedRegions, x)
                   : compact::UnsignedCode(compact::kUnsignedRegions, value, x);
}

inline void EncodeTail(const float* v, int64_t begin, int64_t n, float scale,
                       bool is_signed, uint8_t* codes) {
  for (int64_t i = begin; i < n; ++i) {
    codes[i] = static_cast<uint8_t>(EncodeOne(v[i], v[i] / scale, is_signed));
  }
}

// The codes of a block whose scale is NaN or 0 (every value / scale reads
// as 0): 1 for a positive mean square, else 0.
inline void EncodeUnscaled(const float* v, int64_t n, bool is_signed, uint8_t* codes) {
  for (int64_t i = 0; i < n; ++i) codes[i] = !is_signed && v[i] > 0.0f ? 1 : 0;
}

inline void EncodeScalar(const float* v, int64_t n, bool is_signed, uint8_t* codes,
                         float* scale_out) {
  float scale;
  if (!ScaleOf(LargestMagnitudeBits(v, 0, n, 0), &scale)) {
    *scale_out = scale;
    EncodeUnscaled(v, n, is_signed, codes);
    return;
  }
  *scale_out = scale;
  EncodeTail(v, 0, n, scale, is_signed, codes);
}

// -- The same with AVX2, 8 elements at a time. ----------------------------

// (Called, not inlined: the per-block callers are compiled for several
// targets, and an AVX2 function inlines only into AVX2 or wider code.)
// Table entries are read with scalar loads (8 codes from one 64-bit load),
// not vpgatherdd, which is slow on AMD processors before Zen 4.
RMSPROP_AVX2_TARGET inline void DecodeAvx2(
    const uint8_t* codes, int64_t n, float scale, const float* table, float* out) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t c;
    std::memcpy(&c, codes + i, sizeof(c));
    const __m128 lo = _mm_setr_ps(table[c & 0xff], table[(c >> 8) & 0xff],
                                  table[(c >> 16) & 0xff], table[(c >> 24) & 0xff]);
    const __m128 hi = _mm_setr_ps(table[(c >> 32) & 0xff], table[(c >> 40) & 0xff],
                                  table[(c >> 48) & 0xff], table[c >> 56]);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_set_m128(hi, lo), s));
  }
  DecodeScalar(codes + i, n - i, scale, table, out + i);
}

// compact_format.h's CodeRegions in registers: thresholds broadcast, the
// per-region constants indexed by vpermps (8 regions at most).
struct RegionsAvx2 {
  __m256 thresholds[8];
  __m256 slopes, offsets;
  __m256i bases;
};

RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline RegionsAvx2 LoadRegionsAvx2(
    const compact::CodeRegions& r) {
  RegionsAvx2 out;
  for (int j = 0; j < 8; ++j) out.thresholds[j] = _mm256_set1_ps(r.thresholds[j]);
  out.slopes = _mm256_loadu_ps(r.slopes);
  out.offsets = _mm256_loadu_ps(r.offsets);
  out.bases = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.bases));
  return out;
}

// compact::MagnitudeCode of 8 lanes; lanes not > 0 are masked by the
// caller. kThresholds: the real (not padded) thresholds.
template <int kThresholds>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline __m256i MagnitudeCodesAvx2(
    const RegionsAvx2& r, __m256 x) {
  __m256i region = _mm256_setzero_si256();
  for (int j = 0; j < kThresholds; ++j) {
    const __m256 below = _mm256_cmp_ps(x, r.thresholds[j], _CMP_LT_OQ);
    region = _mm256_sub_epi32(region, _mm256_castps_si256(below));  // below is -1 or 0
  }
  const __m256 slope = _mm256_permutevar8x32_ps(r.slopes, region);
  const __m256 offset = _mm256_permutevar8x32_ps(r.offsets, region);
  const __m256i base = _mm256_permutevar8x32_epi32(r.bases, region);
  // cvtps rounds to nearest even (MXCSR's default mode), as rintf.
  const __m256i step = _mm256_cvtps_epi32(_mm256_sub_ps(_mm256_mul_ps(x, slope), offset));
  return _mm256_add_epi32(base, step);
}

// The codes of 8 values with x = value / scale (compact::UnsignedCode or
// SignedCode).
template <bool kSigned>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline __m256i CodesAvx2(
    __m256 value, __m256 x, const RegionsAvx2& r) {
  const __m256 zero = _mm256_setzero_ps();
  if constexpr (!kSigned) {
    const __m256i counted = _mm256_castps_si256(_mm256_cmp_ps(x, zero, _CMP_GT_OQ));
    const __m256i code = _mm256_and_si256(
        counted, MagnitudeCodesAvx2<RMSPROP_COMPACT_UNSIGNED_THRESHOLDS_SIZE>(r, x));
    const __m256i positive = _mm256_castps_si256(_mm256_cmp_ps(value, zero, _CMP_GT_OQ));
    return _mm256_max_epi32(code, _mm256_srli_epi32(positive, 31));
  } else {
    const __m256 magnitude_of_x =
        _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
    const __m256i counted =
        _mm256_castps_si256(_mm256_cmp_ps(magnitude_of_x, zero, _CMP_GT_OQ));
    const __m256i magnitude = _mm256_and_si256(
        counted, MagnitudeCodesAvx2<RMSPROP_COMPACT_SIGNED_THRESHOLDS_SIZE>(r, magnitude_of_x));
    const __m256i negative = _mm256_castps_si256(_mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    return _mm256_sub_epi32(_mm256_xor_si256(magnitude, negative), negative);
  }
}

// EncodeAvx2's loop over whole groups of 8; returns the elements done.
template <bool kSigned>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline int64_t EncodeLoopAvx2(
    const float* v, int64_t n, float scale, const RegionsAvx2& r,
    uint8_t* __restrict__ codes) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  // 32 at a time: the codes packed to bytes and stored together.
  const __m256i byte_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (; i + 32 <= n; i += 32) {
    __m256i c[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 value = _mm256_loadu_ps(v + i + 8 * k);
      c[k] = CodesAvx2<kSigned>(value, _mm256_div_ps(value, s), r);  // a true division
    }
    const __m256i words01 = _mm256_packs_epi32(c[0], c[1]);
    const __m256i words23 = _mm256_packs_epi32(c[2], c[3]);
    const __m256i bytes = kSigned ? _mm256_packs_epi16(words01, words23)
                                  : _mm256_packus_epi16(words01, words23);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i),
                        _mm256_permutevar8x32_epi32(bytes, byte_order));
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 value = _mm256_loadu_ps(v + i);
    const __m256i code = CodesAvx2<kSigned>(value, _mm256_div_ps(value, s), r);
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(code),
                                          _mm256_extracti128_si256(code, 1));
    const __m128i bytes = kSigned ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + i), bytes);
  }
  return i;
}

RMSPROP_AVX2_TARGET inline void EncodeAvx2(
    const float* v, int64_t n, bool is_signed, uint8_t* codes, float* scale_out) {
  const __m256i magnitude_mask = _mm256_set1_epi32(0x7fffffff);
  __m256i largest8 = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i));
    largest8 = _mm256_max_epu32(largest8, _mm256_and_si256(bits, magnitude_mask));
  }
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), largest8);
  uint32_t largest = 0;
  for (int k = 0; k < 8; ++k) largest = lanes[k] > largest ? lanes[k] : largest;
  largest = LargestMagnitudeBits(v, i, n, largest);
  float scale;
  const bool nonzero = ScaleOf(largest, &scale);
  *scale_out = scale;
  if (!nonzero) {
    EncodeUnscaled(v, n, is_signed, codes);
    return;
  }
  i = is_signed
          ? EncodeLoopAvx2<true>(v, n, scale, LoadRegionsAvx2(compact::kSignedRegions), codes)
          : EncodeLoopAvx2<false>(v, n, scale, LoadRegionsAvx2(compact::kUnsignedRegions),
                                  codes);
  EncodeTail(v, i, n, scale, is_signed, codes);
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

// One slot's block decoded into `out`, or encoded from `in`.
template <bool kVector>
__attribute__((always_inline)) inline void DecodeBlock(const CompactSlot& slot, int64_t block,
                                                       int64_t offset, int64_t n,
                                                       const float* table, float* out) {
  if constexpr (kVector) {
    DecodeAvx2(slot.codes + offset, n, slot.scales[block], table, out);
  } else {
    DecodeScalar(slot.codes + offset, n, slot.scales[block], table, out);
  }
}
template <bool kVector>
__attribute__((always_inline)) inline void EncodeBlock(const float* in, bool is_signed,
                                                       const CompactSlot& slot, int64_t block,
                                                       int64_t offset, int64_t n) {
  if constexpr (kVector) {
    EncodeAvx2(in, n, is_signed, slot.codes + offset, slot.scales + block);
  } else {
    EncodeScalar(in, n, is_signed, slot.codes + offset, slot.scales + block);
  }
}

// Block `block` (n elements from `offset`) of the update: the segments
// change, and every element of the block is encoded again (int8); a
// bfloat16 slot has no blocks, and only the segments are read and written.
// kVector: the AVX2 steps (in AVX2 and AVX-512 code).
template <typename V, StateFormat kFormat, bool kVector>
__attribute__((always_inline)) inline void UpdateBlockBody(
    const CompactUpdate& u, int64_t block, int64_t offset, int64_t n, const Segment* segments,
    int num_segments, const rmsprop_math::Hyper<float>& h, const rmsprop_math::Extras<float>& x,
    const CompactTables& t) {
  alignas(64) float ms[kCompactBlockSize];
  alignas(64) float mg[kCompactBlockSize];
  alignas(64) float mom[kCompactBlockSize];
  if constexpr (kFormat == StateFormat::kInt8) {
    // (No lambdas: they would not inherit the caller's target.)
    DecodeBlock<kVector>(u.ms, block, offset, n, t.unsigned_decode, ms);
    if (V::kCentered) DecodeBlock<kVector>(u.mg, block, offset, n, t.signed_decode, mg);
    if (V::kMomentum) DecodeBlock<kVector>(u.mom, block, offset, n, t.signed_decode, mom);
    for (int s = 0; s < num_segments; ++s) {
      const int64_t at = segments[s].local;
      const SlotPointers<float> slots = {u.var + offset + at, ms + at, mg + at, mom + at,
                                         V::kEma ? u.ema + offset + at : nullptr};
      UpdateElements<V, float, float>(slots, segments[s].grad, 0, segments[s].length, h, x);
    }
    EncodeBlock<kVector>(ms, /*is_signed=*/false, u.ms, block, offset, n);
    if (V::kCentered) EncodeBlock<kVector>(mg, /*is_signed=*/true, u.mg, block, offset, n);
    if (V::kMomentum) EncodeBlock<kVector>(mom, /*is_signed=*/true, u.mom, block, offset, n);
  } else {
    for (int s = 0; s < num_segments; ++s) {
      const int64_t at = offset + segments[s].local;
      const int64_t len = segments[s].length;
      WidenBfloat16<kVector>(u.ms.bfloat16 + at, ms, len);
      if (V::kCentered) WidenBfloat16<kVector>(u.mg.bfloat16 + at, mg, len);
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
                               const rmsprop_math::Extras<float>&, const CompactTables&);

template <typename V, StateFormat kFormat>
RMSPROP_AVX512_TARGET void UpdateBlockAvx512(const CompactUpdate& u, int64_t block,
                                             int64_t offset, int64_t n, const Segment* s,
                                             int num, const rmsprop_math::Hyper<float>& h,
                                             const rmsprop_math::Extras<float>& x,
                                             const CompactTables& t) {
  UpdateBlockBody<V, kFormat, true>(u, block, offset, n, s, num, h, x, t);
}
template <typename V, StateFormat kFormat>
RMSPROP_AVX2_TARGET void UpdateBlockAvx2(const CompactUpdate& u, int64_t block,
                                         int64_t offset, int64_t n, const Segment* s,
                                         int num, const rmsprop_math::Hyper<float>& h,
                                         const rmsprop_math::Extras<float>& x,
                                         const CompactTables& t) {
  UpdateBlockBody<V, kFormat, true>(u, block, offset, n, s, num, h, x, t);
}
template <typename V, StateFormat kFormat>
void UpdateBlockBaseline(const CompactUpdate& u, int64_t block, int64_t offset, int64_t n,
                         const Segment* s, int num, const rmsprop_math::Hyper<float>& h,
                         const rmsprop_math::Extras<float>& x, const CompactTables& t) {
  UpdateBlockBody<V, kFormat, false>(u, block, offset, n, s, num, h, x, t);
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
