// float64 arithmetic with the CPU's flush-to-zero, for the CUDA kernels.
//
// TensorFlow runs its CPU kernels with MXCSR's DAZ and FTZ set, which flush
// subnormal operands and results of float64 operations too; GPUs flush only
// in float32 (nvcc -ftz=true). FlushedDouble is the compute type of float64
// (and of each part of complex128) in the CUDA kernels: every value it holds
// is normal or zero, so operands need no flushing (DAZ), and every result is
// flushed as x86 flushes it (FTZ): to a zero of its sign when it is tiny,
// i.e. when, rounded to 53 bits with an unbounded exponent, it is below the
// smallest normal. Plain doubles in host code, so that tests can compare it
// with the processor's own flushing.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_FLUSHED_DOUBLE_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_FLUSHED_DOUBLE_H_

#include <cfloat>
#include <cmath>
#include <limits>

#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"

namespace rmsprop_math {

class FlushedDouble {
 public:
  FlushedDouble() = default;
  RMSPROP_HOST_DEVICE FlushedDouble(double x) : v_(Flush(x)) {}  // NOLINT: implicit, as double's own
  RMSPROP_HOST_DEVICE operator double() const { return v_; }

  RMSPROP_HOST_DEVICE FlushedDouble& operator+=(FlushedDouble b) {
    return *this = *this + b;
  }
  // A sum or difference of normal numbers that is below the smallest normal
  // is exact, so flushing the rounded result is flushing the exact one.
  friend RMSPROP_HOST_DEVICE FlushedDouble operator+(FlushedDouble a, FlushedDouble b) {
    return FlushedDouble(a.v_ + b.v_);
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator-(FlushedDouble a, FlushedDouble b) {
    return FlushedDouble(a.v_ - b.v_);
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator-(FlushedDouble a) {
    return FlushedDouble(-a.v_);
  }
  // A product or quotient that rounds to the smallest normal may be tiny:
  // redone 2^64 times larger, where rounding has all 53 bits, it says.
  friend RMSPROP_HOST_DEVICE FlushedDouble operator*(FlushedDouble a, FlushedDouble b) {
    const double r = a.v_ * b.v_;
    if (std::fabs(r) == DBL_MIN) {
      const bool a_smaller = std::fabs(a.v_) < std::fabs(b.v_);
      const double scaled = a_smaller ? (a.v_ * kScale) * b.v_ : a.v_ * (b.v_ * kScale);
      if (std::fabs(scaled) < DBL_MIN * kScale) return FlushedDouble(std::copysign(0.0, r));
    }
    return FlushedDouble(r);
  }
  // |a / b| near the smallest normal means |a| <= 4 (|b| < 2^1024), so
  // scaling a cannot overflow.
  friend RMSPROP_HOST_DEVICE FlushedDouble operator/(FlushedDouble a, FlushedDouble b) {
    const double r = a.v_ / b.v_;
    if (std::fabs(r) == DBL_MIN && std::fabs((a.v_ * kScale) / b.v_) < DBL_MIN * kScale) {
      return FlushedDouble(std::copysign(0.0, r));
    }
    return FlushedDouble(r);
  }

  // With a double (the formula's std::fabs returns one), as with another
  // FlushedDouble; without these the mixed expressions would be ambiguous.
  friend RMSPROP_HOST_DEVICE FlushedDouble operator+(double a, FlushedDouble b) {
    return FlushedDouble(a) + b;
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator+(FlushedDouble a, double b) {
    return a + FlushedDouble(b);
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator-(double a, FlushedDouble b) {
    return FlushedDouble(a) - b;
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator-(FlushedDouble a, double b) {
    return a - FlushedDouble(b);
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator*(double a, FlushedDouble b) {
    return FlushedDouble(a) * b;
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator*(FlushedDouble a, double b) {
    return a * FlushedDouble(b);
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator/(double a, FlushedDouble b) {
    return FlushedDouble(a) / b;
  }
  friend RMSPROP_HOST_DEVICE FlushedDouble operator/(FlushedDouble a, double b) {
    return a / FlushedDouble(b);
  }

 private:
  static constexpr double kScale = 18446744073709551616.0;  // 2^64

  static RMSPROP_HOST_DEVICE double Flush(double x) {
    return std::fabs(x) < DBL_MIN ? std::copysign(0.0, x) : x;
  }

  double v_;
};

// The root of a normal number is normal.
template <>
RMSPROP_HOST_DEVICE FlushedDouble Sqrt<FlushedDouble>(FlushedDouble x) {
  return FlushedDouble(std::sqrt(static_cast<double>(x)));
}

RMSPROP_HOST_DEVICE FlushedDouble CanonicalNaN(FlushedDouble x) {
  return FlushedDouble(CanonicalNaN(static_cast<double>(x)));
}

}  // namespace rmsprop_math

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_FLUSHED_DOUBLE_H_
