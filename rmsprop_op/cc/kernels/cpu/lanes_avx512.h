// Vectors of 16 floats for the AVX-512 loops: the formula of rmsprop_math.h
// runs on them directly, half-precision storage widened and narrowed in
// registers.
#ifndef RMSPROP_OP_CC_KERNELS_CPU_LANES_AVX512_H_
#define RMSPROP_OP_CC_KERNELS_CPU_LANES_AVX512_H_

#include <immintrin.h>

#include <cstdint>
#include <limits>

#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/cpu/isa.h"
#include "unsupported/Eigen/CXX11/Tensor"

// With AVX-512 the half-precision update needs no float buffers: widening
// through L1 blocks (widen_avx2.h) cost as much as the arithmetic.
typedef float FloatLanes __attribute__((vector_size(64)));
typedef uint32_t UintLanes __attribute__((vector_size(64)));

namespace rmsprop_math {
template <>
RMSPROP_AVX512_TARGET inline FloatLanes Sqrt<FloatLanes>(FloatLanes x) {
  return (FloatLanes)_mm512_maskz_sqrt_ps(0xffff, (__m512)x);
}
template <>
RMSPROP_AVX512_TARGET inline FloatLanes NonNegative<FloatLanes>(FloatLanes x) {
  const FloatLanes zero = {};
  return x < zero ? zero : x;
}
template <>
RMSPROP_AVX512_TARGET inline FloatLanes CanonicalNaN<FloatLanes>(FloatLanes x) {
  const __mmask16 is_nan = _mm512_cmp_ps_mask((__m512)x, (__m512)x, _CMP_UNORD_Q);
  return (FloatLanes)_mm512_mask_blend_ps(
      is_nan, (__m512)x, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
}
}  // namespace rmsprop_math

namespace rmsprop_op {
namespace cpu {

// Loads of 16 elements (the lanes in `m`; the others read as 0 and are not
// touched in memory) as floats. The float16 conversion is unmasked (the
// load has zeroed the other lanes): a zero-masked vcvtph2ps made float16
// updates about twice as slow (benchmarks/README.md, "Kernel notes").
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
LoadLanes(const Eigen::half* p, __mmask16 m) {
  // (The merge form with every lane set: the plain intrinsic's undefined
  // source draws a false -Wmaybe-uninitialized from GCC 12.)
  return (FloatLanes)_mm512_mask_cvtph_ps(_mm512_setzero_ps(), __mmask16(0xffff),
                                          _mm256_maskz_loadu_epi16(m, p));
}
// bfloat16 is the upper half of a float: a shift (a word permutation
// measured four times slower).
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
LoadLanes(const Eigen::bfloat16* p, __mmask16 m) {
  const UintLanes wide =
      (UintLanes)_mm512_maskz_cvtepu16_epi32(m, _mm256_maskz_loadu_epi16(m, p));
  return (FloatLanes)(wide << 16);
}
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
LoadLanes(const float* p, __mmask16 m) {
  return (FloatLanes)_mm512_maskz_loadu_ps(m, p);
}

// Stores rounding to nearest even, as the scalar conversions do; bfloat16
// NaNs stay quiet NaNs of the same sign (widen_avx2.h's Narrow, in lanes).
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline void StoreLanes(
    Eigen::half* p, __mmask16 m, FloatLanes x) {
  _mm256_mask_storeu_epi16(p, m, _mm512_maskz_cvtps_ph(m, (__m512)x, _MM_FROUND_TO_NEAREST_INT));
}
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline void StoreLanes(
    Eigen::bfloat16* p, __mmask16 m, FloatLanes x) {
  const UintLanes bits = (UintLanes)x;
  const UintLanes high = bits >> 16;
  __m512i narrowed = (__m512i)((bits + 0x7fffu + (high & 1u)) >> 16);
  const __mmask16 is_nan = _mm512_cmp_ps_mask((__m512)x, (__m512)x, _CMP_UNORD_Q);
  if (__builtin_expect(is_nan != 0, 0)) {  // rare: skip the blend otherwise
    const UintLanes quiet = (high | 0x40u) & 0xffc0u;
    narrowed = _mm512_mask_blend_epi32(is_nan, narrowed, (__m512i)quiet);
  }
  _mm256_mask_storeu_epi16(p, m, _mm512_maskz_cvtepi32_epi16(m, narrowed));
}


}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_LANES_AVX512_H_
