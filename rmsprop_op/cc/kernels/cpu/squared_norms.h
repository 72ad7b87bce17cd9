// The CPU's sums of squares for FusedGradientSquaredNorms, in the fixed
// order the CUDA kernel (cuda/norms_kernel.cu.h) follows too.
#ifndef RMSPROP_OP_CC_KERNELS_CPU_SQUARED_NORMS_H_
#define RMSPROP_OP_CC_KERNELS_CPU_SQUARED_NORMS_H_

#include <cstdint>

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/cpu/isa.h"

namespace rmsprop_op {
namespace cpu {

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

}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_SQUARED_NORMS_H_
