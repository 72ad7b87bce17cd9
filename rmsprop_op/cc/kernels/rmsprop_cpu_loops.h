// The CPU element loops of the fused RMSProp update and their dispatch.
//
// The loop is compiled three times (AVX-512, AVX2, baseline x86-64) and the
// widest one the processor supports is picked at run time, so that sqrt and
// division run as vector instructions without building the library for one
// machine only. Half-precision storage is widened to float and narrowed back
// with vector instructions; the arithmetic is always rmsprop_math.h's.
#ifndef RMSPROP_OP_CC_KERNELS_RMSPROP_CPU_LOOPS_H_
#define RMSPROP_OP_CC_KERNELS_RMSPROP_CPU_LOOPS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <type_traits>

#include "rmsprop_op/cc/kernels/rmsprop_functors.h"
#include "rmsprop_op/cc/kernels/rmsprop_math.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {
namespace cpu {

// Elements per block of the widened half-precision loop: five float buffers
// of this size stay in L1.
constexpr int64_t kWidenBlock = 512;

// One pass over elements [begin, end): read each buffer once, write each
// slot once. G is the gradient's storage type (T, or the compute type for
// summed duplicate rows of a sparse update). With kExtras the element is
// UpdateStoredWithExtras with the gradient step kTransform
// (rmsprop_math::GradientTransform); kEma and kDecay say whether an EMA slot
// is updated and the weights decay (compile-time: a run-time choice inside
// the loop keeps GCC from vectorizing it).
template <typename T, typename G, bool kCentered, bool kMomentum,
          bool kExtras = false, int kTransform = 0, bool kEma = false,
          bool kDecay = false>
__attribute__((always_inline)) inline void UpdateRangeBody(
    const SlotPointers<T>& slots, const G* __restrict__ grad, int64_t begin,
    int64_t end, const HyperOf<T>& h, const ExtrasOf<T>& x) {
  using C = ComputeType<T>;
  T* __restrict__ var = slots.var;
  T* __restrict__ ms = slots.ms;
  T* __restrict__ mg = slots.mg;
  T* __restrict__ mom = slots.mom;
  T* __restrict__ ema = slots.ema;
  const HyperOf<T> hyper = h;  // a local copy the compiler can keep in registers
  const ExtrasOf<T> extras = x;
  for (int64_t i = begin; i < end; ++i) {
    const C g = static_cast<C>(grad[i]);
    C ms_i = static_cast<C>(ms[i]);
    C mg_i = kCentered ? static_cast<C>(mg[i]) : C(0);
    C mom_i = kMomentum ? static_cast<C>(mom[i]) : C(0);
    C var_i = static_cast<C>(var[i]);
    if constexpr (kExtras) {
      rmsprop_math::UpdateStoredWithExtras<kCentered, kMomentum, kTransform, kDecay, C>(
          g, var_i, ms_i, mg_i, mom_i, hyper, extras);
      if constexpr (kEma) {
        ema[i] = static_cast<T>(
            rmsprop_math::UpdatedAverage<C>(static_cast<C>(ema[i]), var_i, extras));
      }
    } else {
      rmsprop_math::UpdateStored<kCentered, kMomentum, C>(g, var_i, ms_i, mg_i,
                                                          mom_i, hyper);
    }
    var[i] = static_cast<T>(var_i);
    ms[i] = static_cast<T>(ms_i);
    if (kCentered) mg[i] = static_cast<T>(mg_i);
    if (kMomentum) mom[i] = static_cast<T>(mom_i);
  }
}

template <typename T, typename G>
using UpdateRangeFn = void (*)(const SlotPointers<T>&, const G*, int64_t,
                               int64_t, const HyperOf<T>&, const ExtrasOf<T>&);

// The template arguments of one loop variant.
#define RMSPROP_VARIANT_PARAMS                                          \
  typename T, typename G, bool kCentered, bool kMomentum, bool kExtras, \
      int kTransform, bool kEma
#define RMSPROP_VARIANT_ARGS T, G, kCentered, kMomentum, kExtras, kTransform, kEma
// A loop's: the variant's and whether the weights decay.
#define RMSPROP_LOOP_PARAMS RMSPROP_VARIANT_PARAMS, bool kDecay
#define RMSPROP_LOOP_ARGS RMSPROP_VARIANT_ARGS, kDecay

#define RMSPROP_AVX2_TARGET __attribute__((target("avx2,f16c,fma")))
#define RMSPROP_AVX512_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,f16c,fma")))

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

template <typename T>
constexpr bool kIsReal = !std::is_same<ComputeType<T>, rmsprop_math::Complex<float>>::value &&
                         !std::is_same<ComputeType<T>, rmsprop_math::Complex<double>>::value;

template <typename T>
constexpr bool kIsHalfPrecision = std::is_same<T, Eigen::half>::value ||
                                  std::is_same<T, Eigen::bfloat16>::value;

// The float loop over blocks of widened half-precision slots. G is T, or
// float for summed sparse rows (already wide).
template <RMSPROP_LOOP_PARAMS>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void UpdateWidened(
    const SlotPointers<T>& slots, const G* grad, int64_t begin, int64_t end,
    const HyperOf<T>& h, const ExtrasOf<T>& x) {
  alignas(64) float var[kWidenBlock], ms[kWidenBlock], mg[kWidenBlock],
      mom[kWidenBlock], ema[kWidenBlock], g[kWidenBlock];
  const SlotPointers<float> wide = {var, ms, kCentered ? mg : nullptr,
                                    kMomentum ? mom : nullptr,
                                    kEma ? ema : nullptr};
  for (int64_t b = begin; b < end; b += kWidenBlock) {
    const int64_t n = std::min<int64_t>(kWidenBlock, end - b);
    Widen(slots.var + b, var, n);
    Widen(slots.ms + b, ms, n);
    if (kCentered) Widen(slots.mg + b, mg, n);
    if (kMomentum) Widen(slots.mom + b, mom, n);
    if (kEma) Widen(slots.ema + b, ema, n);
    const float* g_block;
    if constexpr (std::is_same<G, float>::value) {
      g_block = grad + b;
    } else {
      Widen(grad + b, g, n);
      g_block = g;
    }
    UpdateRangeBody<float, float, kCentered, kMomentum, kExtras, kTransform, kEma, kDecay>(
        wide, g_block, 0, n, h, x);
    Narrow(var, slots.var + b, n);
    Narrow(ms, slots.ms + b, n);
    if (kCentered) Narrow(mg, slots.mg + b, n);
    if (kMomentum) Narrow(mom, slots.mom + b, n);
    if (kEma) Narrow(ema, slots.ema + b, n);
  }
}


}  // namespace cpu
}  // namespace rmsprop_op

// With AVX-512 the half-precision update needs no float buffers at all: the
// formula of rmsprop_math.h runs on vectors of 16 floats, widened from and
// narrowed to half precision in registers. Widening through L1 blocks
// (above) cost as much as the arithmetic; this halves the time per element.
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
// updates about twice as slow on an AMD EPYC (in cache, 0.92 ns an
// element against 0.31-0.45 ns unmasked; float32 0.18-0.26).
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
LoadLanes(const Eigen::half* p, __mmask16 m) {
  // (The merge form with every lane set: the plain intrinsic's undefined
  // source draws a false -Wmaybe-uninitialized from GCC 12.)
  return (FloatLanes)_mm512_mask_cvtph_ps(_mm512_setzero_ps(), __mmask16(0xffff),
                                          _mm256_maskz_loadu_epi16(m, p));
}
// bfloat16 is the upper half of a float. (A word permutation instead of
// the shifts measured four times slower.)
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
// NaNs stay quiet NaNs of the same sign (the Narrow above, in lanes).
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

RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
Broadcast(float x) {
  return (FloatLanes)_mm512_set1_ps(x);
}

// flatten: the formula's generic code calls this file's AVX-512 Sqrt, which
// GCC inlines only into AVX-512 code; without it every 16 lanes cost a call.
template <RMSPROP_LOOP_PARAMS>
RMSPROP_AVX512_TARGET __attribute__((flatten)) inline void UpdateLanes(
    const SlotPointers<T>& slots, const G* grad, int64_t begin, int64_t end,
    const HyperOf<T>& h, const ExtrasOf<T>& x) {
  const rmsprop_math::Hyper<FloatLanes> lanes_h = {
      Broadcast(h.lr),       Broadcast(h.rho),
      Broadcast(h.one_minus_rho), Broadcast(h.momentum),
      Broadcast(h.epsilon_in_sqrt), Broadcast(h.epsilon_after_sqrt)};
  const rmsprop_math::Extras<FloatLanes> lanes_x = {
      Broadcast(x.grad_divisor), Broadcast(x.grad_multiplier),
      Broadcast(x.clip_multiplier), Broadcast(x.clip_divisor),
      Broadcast(x.clip_value), Broadcast(x.weight_decay),
      Broadcast(x.ema_momentum), Broadcast(x.one_minus_ema_momentum), x.decay};
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 m = end - i >= 16 ? __mmask16(0xffff)
                                      : __mmask16((1u << (end - i)) - 1);
    const FloatLanes g = LoadLanes(grad + i, m);
    FloatLanes ms = LoadLanes(slots.ms + i, m);
    FloatLanes mg = kCentered ? LoadLanes(slots.mg + i, m) : FloatLanes{};
    FloatLanes mom = kMomentum ? LoadLanes(slots.mom + i, m) : FloatLanes{};
    FloatLanes var = LoadLanes(slots.var + i, m);
    if constexpr (kExtras) {
      rmsprop_math::UpdateStoredWithExtras<kCentered, kMomentum, kTransform, kDecay,
                                           FloatLanes>(
          g, var, ms, mg, mom, lanes_h, lanes_x);
      if constexpr (kEma) {
        StoreLanes(slots.ema + i, m,
                   rmsprop_math::UpdatedAverage<FloatLanes>(LoadLanes(slots.ema + i, m),
                                                            var, lanes_x));
      }
    } else {
      rmsprop_math::UpdateStored<kCentered, kMomentum, FloatLanes>(
          g, var, ms, mg, mom, lanes_h);
    }
    StoreLanes(slots.var + i, m, var);
    StoreLanes(slots.ms + i, m, ms);
    if (kCentered) StoreLanes(slots.mg + i, m, mg);
    if (kMomentum) StoreLanes(slots.mom + i, m, mom);
  }
}

#define RMSPROP_DEFINE_RANGE_VARIANT(NAME, TARGET, HALF_PRECISION_LOOP)        \
  template <RMSPROP_LOOP_PARAMS>                                              \
  TARGET __attribute__((always_inline)) inline void NAME##Loop(               \
      const SlotPointers<T>& slots, const G* grad, int64_t begin,             \
      int64_t end, const HyperOf<T>& h, const ExtrasOf<T>& x) {               \
    if constexpr (kIsHalfPrecision<T>) {                                      \
      HALF_PRECISION_LOOP<RMSPROP_LOOP_ARGS>(slots, grad, begin, end, h, x);  \
    } else {                                                                  \
      UpdateRangeBody<RMSPROP_LOOP_ARGS>(slots, grad, begin, end, h, x);      \
    }                                                                         \
  }                                                                           \
  template <RMSPROP_VARIANT_PARAMS>                                           \
  TARGET void NAME(const SlotPointers<T>& slots, const G* grad,               \
                   int64_t begin, int64_t end, const HyperOf<T>& h,           \
                   const ExtrasOf<T>& x) {                                    \
    if (kExtras && x.decay) {                                                 \
      NAME##Loop<RMSPROP_VARIANT_ARGS, true>(slots, grad, begin, end, h, x);  \
    } else {                                                                  \
      NAME##Loop<RMSPROP_VARIANT_ARGS, false>(slots, grad, begin, end, h, x); \
    }                                                                         \
  }

RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeAvx512, RMSPROP_AVX512_TARGET, UpdateLanes)
RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeAvx2, RMSPROP_AVX2_TARGET, UpdateWidened)
RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeBaseline, , UpdateRangeBody)
#undef RMSPROP_DEFINE_RANGE_VARIANT

enum class Isa { kBaseline, kAvx2, kAvx512 };

inline Isa DetectIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return Isa::kAvx2;
  }
  return Isa::kBaseline;
}

// Detected once, on first use.
inline Isa CurrentIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

template <RMSPROP_VARIANT_PARAMS>
UpdateRangeFn<T, G> SelectForIsa() {
  switch (CurrentIsa()) {
    case Isa::kAvx512:
      return &UpdateRangeAvx512<RMSPROP_VARIANT_ARGS>;
    case Isa::kAvx2:
      return &UpdateRangeAvx2<RMSPROP_VARIANT_ARGS>;
    default:
      return &UpdateRangeBaseline<RMSPROP_VARIANT_ARGS>;
  }
}

template <typename T, typename G, bool kCentered, bool kMomentum, bool kEma>
UpdateRangeFn<T, G> SelectTransform(int transform) {
  using rmsprop_math::kFullTransform;
  using rmsprop_math::kMultiplyTransform;
  using rmsprop_math::kNoTransform;
  switch (transform) {
    case kNoTransform:
      return SelectForIsa<T, G, kCentered, kMomentum, true, kNoTransform, kEma>();
    case kMultiplyTransform:
      return SelectForIsa<T, G, kCentered, kMomentum, true, kMultiplyTransform, kEma>();
    default:
      return SelectForIsa<T, G, kCentered, kMomentum, true, kFullTransform, kEma>();
  }
}

template <typename T, typename G, bool kCentered, bool kMomentum>
UpdateRangeFn<T, G> SelectVariant(bool extras, int transform, bool ema) {
  if constexpr (kIsReal<T>) {
    if (extras) {
      return ema ? SelectTransform<T, G, kCentered, kMomentum, true>(transform)
                 : SelectTransform<T, G, kCentered, kMomentum, false>(transform);
    }
  }
  return SelectForIsa<T, G, kCentered, kMomentum, false, 0, false>();
}

// The loop for this variant of the update on this processor; with `extras`
// (real dtypes only) the one with Keras's steps around it, computing the
// gradient step `transform` (rmsprop_math::GradientTransform) and updating an
// EMA slot with `ema`.
template <typename T, typename G>
UpdateRangeFn<T, G> SelectUpdateRange(bool centered, bool momentum,
                                      bool extras = false, int transform = 0,
                                      bool ema = false) {
  if (centered) {
    return momentum ? SelectVariant<T, G, true, true>(extras, transform, ema)
                    : SelectVariant<T, G, true, false>(extras, transform, ema);
  }
  return momentum ? SelectVariant<T, G, false, true>(extras, transform, ema)
                  : SelectVariant<T, G, false, false>(extras, transform, ema);
}

// The sum of (g / divisor)^2 over one block of grad (kNormLanes x
// kNormRows elements from `lo`, fewer at the end): each quotient in the
// compute type, as Keras unscales; squares accumulated in double, lane k
// summing elements k, k + kNormLanes, ... in order, then the lanes added
// pairwise (lane k += lane k + s for s = kNormLanes/2, ..., 1). The CUDA
// kernel sums in exactly this order (a thread per lane, the pairs in shared
// memory), so both devices give the same bits.
template <typename T>
__attribute__((always_inline)) inline double SumOfSquaresBody(
    const T* __restrict__ grad, int64_t lo, int64_t hi, ComputeType<T> divisor) {
  using C = ComputeType<T>;
  alignas(64) double lanes[kNormLanes] = {};
  int64_t i = lo;
  for (; i + kNormLanes <= hi; i += kNormLanes) {
    for (int k = 0; k < kNormLanes; ++k) {
      const double q = static_cast<C>(grad[i + k]) / divisor;
      lanes[k] += q * q;
    }
  }
  for (int k = 0; i + k < hi; ++k) {
    const double q = static_cast<C>(grad[i + k]) / divisor;
    lanes[k] += q * q;
  }
  for (int stride = kNormLanes / 2; stride > 0; stride /= 2) {
    for (int k = 0; k < stride; ++k) lanes[k] += lanes[k + stride];
  }
  return lanes[0];
}

template <typename T>
RMSPROP_AVX512_TARGET double SumOfSquaresAvx512(const T* g, int64_t lo, int64_t hi,
                                                ComputeType<T> divisor) {
  return SumOfSquaresBody<T>(g, lo, hi, divisor);
}
template <typename T>
RMSPROP_AVX2_TARGET double SumOfSquaresAvx2(const T* g, int64_t lo, int64_t hi,
                                            ComputeType<T> divisor) {
  return SumOfSquaresBody<T>(g, lo, hi, divisor);
}
template <typename T>
double SumOfSquaresBaseline(const T* g, int64_t lo, int64_t hi,
                            ComputeType<T> divisor) {
  return SumOfSquaresBody<T>(g, lo, hi, divisor);
}

// The same bits on every instruction set: only the width of the lanes'
// registers differs, not the order of the additions.
template <typename T>
double SumOfSquares(const T* g, int64_t lo, int64_t hi, ComputeType<T> divisor) {
  switch (CurrentIsa()) {
    case Isa::kAvx512:
      return SumOfSquaresAvx512<T>(g, lo, hi, divisor);
    case Isa::kAvx2:
      return SumOfSquaresAvx2<T>(g, lo, hi, divisor);
    default:
      return SumOfSquaresBaseline<T>(g, lo, hi, divisor);
  }
}

// Cycles per element of one update on one core (the centered update with
// momentum, the costliest; measured at 0.64 ns an element for float32,
// 1.4 for float64, 1.3 float16, 2.5 bfloat16, 18 complex64, 23 complex128),
// for the thread pool's cost model. Eigen gives an update a second thread
// once it costs more than 200,000 cycles, so a float32 update is split only
// from about 1e5 elements, where the work outweighs waking a thread; with
// the earlier estimate of 16 cycles plus bytes, 1e4 centered elements were
// split and ran three times slower than on one thread.
template <typename T>
constexpr double kCyclesPerElement = 2.0;
template <>
constexpr double kCyclesPerElement<double> = 4.5;
template <>
constexpr double kCyclesPerElement<Eigen::half> = 4.0;
template <>
constexpr double kCyclesPerElement<Eigen::bfloat16> = 7.5;
template <>
constexpr double kCyclesPerElement<std::complex<float>> = 55.0;
template <>
constexpr double kCyclesPerElement<std::complex<double>> = 70.0;

template <typename T>
Eigen::TensorOpCost ElementCost(const SlotPointers<T>&) {
  return Eigen::TensorOpCost(0, 0, kCyclesPerElement<T>);
}

// The cost of an element of a sparse row: rows are scattered over tables
// larger than the caches, so every byte counts as a load from memory.
template <typename T>
Eigen::TensorOpCost ScatteredElementCost(const SlotPointers<T>& slots) {
  const int slots_written = 2 + (slots.mg ? 1 : 0) + (slots.mom ? 1 : 0);
  return Eigen::TensorOpCost(sizeof(T) * (slots_written + 1),
                             sizeof(T) * slots_written,
                             /*compute_cycles=*/16);
}


}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_RMSPROP_CPU_LOOPS_H_
