// The CPU element loops of the fused RMSProp update, and the one choice of
// loop for a variant on this processor (SelectUpdateRange). Every loop stores
// through rmsprop_math::UpdateElement; they differ only in how elements
// reach it: one at a time, as floats widened a block at a time (AVX2, half
// precision), or as vectors of 16 floats (AVX-512, half precision).
#ifndef RMSPROP_OP_CC_KERNELS_CPU_ELEMENT_LOOPS_H_
#define RMSPROP_OP_CC_KERNELS_CPU_ELEMENT_LOOPS_H_

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/common/variant.h"
#include "rmsprop_op/cc/kernels/cpu/isa.h"
#include "rmsprop_op/cc/kernels/cpu/lanes_avx512.h"
#include "rmsprop_op/cc/kernels/cpu/widen_avx2.h"

namespace rmsprop_op {
namespace cpu {

// One pass over elements [begin, end) of one variable: read each buffer once,
// write each slot once. G is the gradient's storage type (T, or the compute
// type for summed duplicate rows of a sparse update).
template <typename T, typename G>
using UpdateRangeFn = void (*)(const SlotPointers<T>&, const G*, int64_t,
                               int64_t, const HyperOf<T>&, const ExtrasOf<T>&);

// One element at a time, in the compute type; compilers vectorize it for
// float and double. kCanonicalSlots: rmsprop_math::UpdateElement's.
template <typename V, typename T, typename G, bool kCanonicalSlots = true>
__attribute__((always_inline)) inline void UpdateElements(
    const SlotPointers<T>& slots, const G* __restrict__ grad, int64_t begin,
    int64_t end, const HyperOf<T>& h, const ExtrasOf<T>& x) {
  static_assert(!V::kStepsAtRunTime, "the CPU loops fix every step at compile time");
  using C = ComputeType<T>;
  T* __restrict__ var = slots.var;
  T* __restrict__ ms = slots.ms;
  T* __restrict__ mg = slots.mg;
  T* __restrict__ mom = slots.mom;
  T* __restrict__ ema = slots.ema;
  const HyperOf<T> hyper = h;  // local copies the compiler can keep in registers
  const ExtrasOf<T> extras = x;
  for (int64_t i = begin; i < end; ++i) {
    C var_i = static_cast<C>(var[i]);
    C ms_i = static_cast<C>(ms[i]);
    C mg_i = V::kCentered ? static_cast<C>(mg[i]) : C(0);
    C mom_i = V::kMomentum ? static_cast<C>(mom[i]) : C(0);
    C ema_i = V::kEma ? static_cast<C>(ema[i]) : C(0);
    rmsprop_math::UpdateElement<V, C, typename RealOf<C>::type, kCanonicalSlots>(
        static_cast<C>(grad[i]), var_i, ms_i, mg_i, mom_i, ema_i, hyper, extras);
    var[i] = static_cast<T>(var_i);
    ms[i] = static_cast<T>(ms_i);
    if (V::kCentered) mg[i] = static_cast<T>(mg_i);
    if (V::kMomentum) mom[i] = static_cast<T>(mom_i);
    if (V::kEma) ema[i] = static_cast<T>(ema_i);
  }
}

template <typename T>
constexpr bool kIsHalfPrecision = std::is_same<T, Eigen::half>::value ||
                                  std::is_same<T, Eigen::bfloat16>::value;

// Half precision with AVX2: blocks widened to float (compilers do not
// vectorize Eigen's scalar conversions), the float loop, one rounding back.
// G is T, or float for summed sparse rows (already wide).
template <typename V, typename T, typename G>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void UpdateWidened(
    const SlotPointers<T>& slots, const G* grad, int64_t begin, int64_t end,
    const HyperOf<T>& h, const ExtrasOf<T>& x) {
  alignas(64) float var[kWidenBlock], ms[kWidenBlock], mg[kWidenBlock],
      mom[kWidenBlock], ema[kWidenBlock], g[kWidenBlock];
  const SlotPointers<float> wide = {var, ms, V::kCentered ? mg : nullptr,
                                    V::kMomentum ? mom : nullptr,
                                    V::kEma ? ema : nullptr};
  for (int64_t b = begin; b < end; b += kWidenBlock) {
    const int64_t n = std::min<int64_t>(kWidenBlock, end - b);
    Widen(slots.var + b, var, n);
    Widen(slots.ms + b, ms, n);
    if (V::kCentered) Widen(slots.mg + b, mg, n);
    if (V::kMomentum) Widen(slots.mom + b, mom, n);
    if (V::kEma) Widen(slots.ema + b, ema, n);
    const float* g_block;
    if constexpr (std::is_same<G, float>::value) {
      g_block = grad + b;
    } else {
      Widen(grad + b, g, n);
      g_block = g;
    }
    UpdateElements<V, float, float>(wide, g_block, 0, n, h, x);
    Narrow(var, slots.var + b, n);
    Narrow(ms, slots.ms + b, n);
    if (V::kCentered) Narrow(mg, slots.mg + b, n);
    if (V::kMomentum) Narrow(mom, slots.mom + b, n);
    if (V::kEma) Narrow(ema, slots.ema + b, n);
  }
}

// Half precision with AVX-512: 16 lanes at a time, widened and narrowed in
// registers. flatten: the formula's generic code calls lanes_avx512.h's
// Sqrt, which GCC inlines only into AVX-512 code; without it every 16 lanes
// cost a call.
template <typename V, typename T, typename G>
RMSPROP_AVX512_TARGET __attribute__((flatten)) inline void UpdateLanes(
    const SlotPointers<T>& slots, const G* grad, int64_t begin, int64_t end,
    const HyperOf<T>& h, const ExtrasOf<T>& x) {
  const auto broadcast = [](float v) {
    FloatLanes lanes;
    for (int k = 0; k < 16; ++k) lanes[k] = v;
    return lanes;
  };
  const auto lanes_h = rmsprop_math::ConvertAll<FloatLanes>(h, broadcast);
  const auto lanes_x = rmsprop_math::ConvertAll<FloatLanes>(x, broadcast);
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 m = end - i >= 16 ? __mmask16(0xffff)
                                      : __mmask16((1u << (end - i)) - 1);
    FloatLanes var = LoadLanes(slots.var + i, m);
    FloatLanes ms = LoadLanes(slots.ms + i, m);
    FloatLanes mg = V::kCentered ? LoadLanes(slots.mg + i, m) : FloatLanes{};
    FloatLanes mom = V::kMomentum ? LoadLanes(slots.mom + i, m) : FloatLanes{};
    FloatLanes ema = V::kEma ? LoadLanes(slots.ema + i, m) : FloatLanes{};
    rmsprop_math::UpdateElement<V, FloatLanes>(LoadLanes(grad + i, m), var, ms, mg,
                                               mom, ema, lanes_h, lanes_x);
    StoreLanes(slots.var + i, m, var);
    StoreLanes(slots.ms + i, m, ms);
    if (V::kCentered) StoreLanes(slots.mg + i, m, mg);
    if (V::kMomentum) StoreLanes(slots.mom + i, m, mom);
    if (V::kEma) StoreLanes(slots.ema + i, m, ema);
  }
}

// The loop of each instruction set: the same source, compiled for it.
template <typename V, typename T, typename G>
RMSPROP_AVX512_TARGET void UpdateRangeAvx512(const SlotPointers<T>& slots, const G* grad,
                                             int64_t begin, int64_t end,
                                             const HyperOf<T>& h, const ExtrasOf<T>& x) {
  if constexpr (kIsHalfPrecision<T>) {
    UpdateLanes<V, T, G>(slots, grad, begin, end, h, x);
  } else {
    UpdateElements<V, T, G>(slots, grad, begin, end, h, x);
  }
}

template <typename V, typename T, typename G>
RMSPROP_AVX2_TARGET void UpdateRangeAvx2(const SlotPointers<T>& slots, const G* grad,
                                         int64_t begin, int64_t end,
                                         const HyperOf<T>& h, const ExtrasOf<T>& x) {
  if constexpr (kIsHalfPrecision<T>) {
    UpdateWidened<V, T, G>(slots, grad, begin, end, h, x);
  } else {
    UpdateElements<V, T, G>(slots, grad, begin, end, h, x);
  }
}

template <typename V, typename T, typename G>
void UpdateRangeBaseline(const SlotPointers<T>& slots, const G* grad, int64_t begin,
                         int64_t end, const HyperOf<T>& h, const ExtrasOf<T>& x) {
  UpdateElements<V, T, G>(slots, grad, begin, end, h, x);
}

// The loop for `choice` on this processor; kWithExtras: compile the extras'
// loops too (real dtypes).
template <typename T, typename G, bool kWithExtras = kIsReal<T>>
UpdateRangeFn<T, G> SelectUpdateRange(const rmsprop_math::VariantChoice& choice) {
  const Isa isa = CurrentIsa();
  constexpr auto kExtras = kWithExtras ? rmsprop_math::ExtrasDispatch::kCompiled
                                       : rmsprop_math::ExtrasDispatch::kNone;
  return rmsprop_math::DispatchVariant<kExtras>(
      choice, [isa](auto variant) -> UpdateRangeFn<T, G> {
        using V = decltype(variant);
        switch (isa) {
          case Isa::kAvx512:
            return &UpdateRangeAvx512<V, T, G>;
          case Isa::kAvx2:
            return &UpdateRangeAvx2<V, T, G>;
          default:
            return &UpdateRangeBaseline<V, T, G>;
        }
      });
}

}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_ELEMENT_LOOPS_H_
