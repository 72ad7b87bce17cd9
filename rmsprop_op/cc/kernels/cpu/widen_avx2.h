// Half-precision storage widened to float and narrowed back with AVX2
// vector instructions, a block at a time, for the AVX2 loops.
#ifndef RMSPROP_OP_CC_KERNELS_CPU_WIDEN_AVX2_H_
#define RMSPROP_OP_CC_KERNELS_CPU_WIDEN_AVX2_H_

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "rmsprop_op/cc/kernels/cpu/isa.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {
namespace cpu {

// Elements per block of the widened half-precision loop: five float buffers
// of this size stay in L1.
constexpr int64_t kWidenBlock = 512;

// Compilers do not vectorize Eigen's scalar half and bfloat16 conversions,
// which made those updates several times slower per byte than float. The
// AVX variants therefore widen blocks of half-precision storage to float
// with vector instructions, run the float loop on them, and narrow the
// results back with one round-to-nearest-even, exactly as the scalar path
// rounds.
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Widen(
    const Eigen::half* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Narrow(
    const float* in, Eigen::half* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i),
                                      _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = static_cast<Eigen::half>(in[i]);
}

// bfloat16 is the upper half of a float: widening is a shift; narrowing
// rounds to nearest even and keeps NaNs quiet NaNs of the same sign, as
// Eigen's conversion does. Plain integer loops, which compilers vectorize.
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Widen(
    const Eigen::bfloat16* in, float* out, int64_t n) {
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(in);
  uint32_t wide[kWidenBlock];
  for (int64_t i = 0; i < n; ++i) wide[i] = static_cast<uint32_t>(bits[i]) << 16;
  std::memcpy(out, wide, n * sizeof(float));
}

RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Narrow(
    const float* in, Eigen::bfloat16* out, int64_t n) {
  uint32_t wide[kWidenBlock];
  std::memcpy(wide, in, n * sizeof(float));
  uint16_t* bits = reinterpret_cast<uint16_t*>(out);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t x = wide[i];
    const bool is_nan = (x & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    bits[i] = static_cast<uint16_t>(is_nan ? ((x >> 16) | 0x0040u) & 0xffc0u
                                           : rounded);
  }
}

}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_WIDEN_AVX2_H_
