// The RMSProp update formula, written once.
//
// Every implementation in this project (CPU kernels, CUDA kernels, and, by
// line-for-line mirroring, the XLA fallback in rmsprop_op/plain_tf.py and
// the NumPy reference in tests/reference.py) follows these functions. The
// header has no TensorFlow dependency so that the standalone CUDA checker can
// include it too.
//
// The evaluation order matches Keras 3's RMSprop (rho*ms + (1-rho)*g^2, then
// (lr*g)/sqrt(denom)) so that our results agree with the stock optimizer to
// the last bit in float32; TensorFlow's ResourceApplyRMSProp writes
// ms + (g^2-ms)*(1-rho), which differs by a few ulps.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_RMSPROP_MATH_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_RMSPROP_MATH_H_

#include <cmath>
#include <limits>
#include <utility>

#include "rmsprop_op/cc/kernels/common/hyperparameters.h"
#include "rmsprop_op/cc/kernels/common/variant.h"

namespace rmsprop_math {

// A complex number as TensorFlow's complex64 / complex128 store it (real,
// imaginary). The same arithmetic on host and device, written with IEEE
// operations only (no library complex division or hypot), so that CPU and
// GPU kernels round alike. Semantics are TensorFlow's training ops': g^2 is
// the complex square g*g, the root is the principal square root, and the
// real hyperparameters scale both parts.
template <typename R>
struct Complex {
  R re;
  R im;

  Complex() = default;
  RMSPROP_HOST_DEVICE constexpr Complex(R real, R imag = R(0)) : re(real), im(imag) {}
  // From and to std::complex (the CPU storage type), without naming it here.
  template <typename S, typename = decltype(static_cast<R>(
                            std::declval<const S&>().imag()))>
  explicit Complex(const S& z) : re(z.real()), im(z.imag()) {}
  template <typename S, typename = decltype(S(R(), R()))>
  explicit operator S() const { return S(re, im); }

  RMSPROP_HOST_DEVICE Complex& operator+=(const Complex& b) {
    re += b.re;
    im += b.im;
    return *this;
  }
};

template <typename R>
RMSPROP_HOST_DEVICE Complex<R> operator+(Complex<R> a, Complex<R> b) {
  return {a.re + b.re, a.im + b.im};
}
template <typename R>
RMSPROP_HOST_DEVICE Complex<R> operator-(Complex<R> a, Complex<R> b) {
  return {a.re - b.re, a.im - b.im};
}
template <typename R>
RMSPROP_HOST_DEVICE Complex<R> operator*(Complex<R> a, Complex<R> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
// A real hyperparameter: added to the real part, or scaling both parts.
template <typename R>
RMSPROP_HOST_DEVICE Complex<R> operator+(Complex<R> a, R b) {
  return {a.re + b, a.im};
}
template <typename R>
RMSPROP_HOST_DEVICE Complex<R> operator*(R a, Complex<R> b) {
  return {a * b.re, a * b.im};
}

// a / b by Smith's method: scaling by the larger part of b avoids the
// overflow of dividing by |b|^2.
template <typename R>
RMSPROP_HOST_DEVICE Complex<R> operator/(Complex<R> a, Complex<R> b) {
  if (std::fabs(b.re) >= std::fabs(b.im)) {
    const R ratio = b.im / b.re;
    const R denom = b.re + b.im * ratio;
    return {(a.re + a.im * ratio) / denom, (a.im - a.re * ratio) / denom};
  }
  const R ratio = b.re / b.im;
  const R denom = b.re * ratio + b.im;
  return {(a.re * ratio + a.im) / denom, (a.im * ratio - a.re) / denom};
}

template <typename C>
RMSPROP_HOST_DEVICE C Sqrt(C x) {
  return std::sqrt(x);
}
#if defined(__CUDACC__)
template <>
RMSPROP_HOST_DEVICE float Sqrt<float>(float x) {
  return sqrtf(x);  // IEEE-rounded in device code unless -use_fast_math
}
#endif

// |z| without overflow: the larger part times sqrt(1 + ratio^2).
template <typename R>
RMSPROP_HOST_DEVICE R Abs(Complex<R> z) {
  R big = std::fabs(z.re);
  R small = std::fabs(z.im);
  if (big < small) {
    const R t = big;
    big = small;
    small = t;
  }
  if (big == R(0) || !(big - big == R(0))) {
    return big + small;  // 0, NaN, or an infinite part
  }
  const R ratio = small / big;
  return big * Sqrt<R>(R(1) + ratio * ratio);
}

// The principal square root: w = sqrt((|re| + |z|) / 2) is one part of the
// root and im / (2w) the other, chosen by the sign of re so that nothing
// cancels; the imaginary part keeps the sign of im.
template <typename R>
RMSPROP_HOST_DEVICE Complex<R> Sqrt(Complex<R> z) {
  if (z.re == R(0) && z.im == R(0)) return {R(0), z.im};
  const R w = Sqrt<R>((std::fabs(z.re) + Abs(z)) * R(0.5));
  if (z.re >= R(0)) return {w, z.im / (R(2) * w)};
  return {std::fabs(z.im) / (R(2) * w), std::signbit(z.im) ? -w : w};
}

// lr*g / (sqrt(denom + epsilon_in_sqrt) + epsilon_after_sqrt).
template <typename C, typename R>
RMSPROP_HOST_DEVICE C ScaledStep(C g, C denom, const Hyper<R>& h) {
  return (h.lr * g) / (Sqrt(denom + h.epsilon_in_sqrt) + h.epsilon_after_sqrt);
}

// Updates the mean square `ms` and returns the step lr*g/sqrt(ms + epsilon).
template <typename C, typename R>
RMSPROP_HOST_DEVICE C PlainStep(C g, C& ms, const Hyper<R>& h) {
  ms = h.rho * ms + h.one_minus_rho * (g * g);
  return ScaledStep<C>(g, ms, h);
}

// x, or 0 where x < 0 (NaN stays NaN). ms - mg^2 is a variance, never
// negative in exact arithmetic; rounding can make it so, most of all in half
// precision, where a stored ms can underflow to 0 beside a representable mg.
// There the root is taken of 0, as the stock optimizer's half arithmetic does
// (its mg^2 underflows too), not of a negative number (NaN). Complex
// variables have no order: their principal root is taken as it is.
template <typename C>
RMSPROP_HOST_DEVICE C NonNegative(C x) {
  return x < C(0) ? C(0) : x;
}
template <typename R>
RMSPROP_HOST_DEVICE Complex<R> NonNegative(Complex<R> z) {
  return z;
}

// Updates `ms` and the mean gradient `mg` and returns
// lr*g/sqrt(max(ms - mg^2 + epsilon, 0)).
template <typename C, typename R>
RMSPROP_HOST_DEVICE C CenteredStep(C g, C& ms, C& mg, const Hyper<R>& h) {
  ms = h.rho * ms + h.one_minus_rho * (g * g);
  mg = h.rho * mg + h.one_minus_rho * g;
  const C variance = NonNegative(ms - mg * mg + h.epsilon_in_sqrt);
  return (h.lr * g) / (Sqrt(variance) + h.epsilon_after_sqrt);
}

// With a momentum slot the variable moves by the accumulated momentum.
template <typename C, typename R>
RMSPROP_HOST_DEVICE C MomentumDelta(C step, C& mom, const Hyper<R>& h) {
  mom = h.momentum * mom + step;
  return mom;
}

// How far var moves, and the slots' new values, for the four slot variants.
// C is the compute type (a real type, Complex<R>, or a vector of floats);
// the hyperparameters are in its real type.
template <bool kCentered, bool kMomentum, typename C, typename R>
RMSPROP_HOST_DEVICE C VariableDelta(C g, C& ms, C& mg, C& mom,
                                    const Hyper<R>& h) {
  const C step = kCentered ? CenteredStep<C>(g, ms, mg, h)
                           : PlainStep<C>(g, ms, h);
  return kMomentum ? MomentumDelta<C>(step, mom, h) : step;
}

// NaN results are stored as one NaN, positive with only the quiet bit set
// (NumPy's np.nan): x86 would keep an input's payload and sign, CUDA writes a
// NaN of its own, and stored bits must not depend on the device.
template <typename C>
RMSPROP_HOST_DEVICE C CanonicalNaN(C x) {
  return x != x ? std::numeric_limits<C>::quiet_NaN() : x;
}
template <typename R>
RMSPROP_HOST_DEVICE Complex<R> CanonicalNaN(Complex<R> z) {
  return {CanonicalNaN(z.re), CanonicalNaN(z.im)};
}

// tf.clip_by_value's min(max(x, lo), hi) for x in [lo, hi] bounds; NaN stays NaN.
template <typename C>
RMSPROP_HOST_DEVICE C Clip(C x, C lo, C hi) {
  x = x < lo ? lo : x;
  return x > hi ? hi : x;
}

// Keras's gradient steps, in its order: loss-scale unscaling; clipnorm's
// g*c/max(norm, c) or global_clipnorm's g*scale; clipvalue. Each is an exact
// no-op at its neutral value (1, 1, 1, +inf).
template <int kTransform, typename C, typename R>
RMSPROP_HOST_DEVICE C TransformedGradient(C g, const Extras<R>& x) {
  if (kTransform == kNoTransform) return g;
  const C scaled = kTransform == kMultiplyTransform
                       ? (g * x.grad_multiplier) * x.clip_multiplier
                       : ((g / x.grad_divisor) * x.clip_multiplier) / x.clip_divisor;
  return Clip<C>(scaled, C(-x.clip_value), C(x.clip_value));
}

// The EMA slot's new value from the updated var.
template <typename C, typename R>
RMSPROP_HOST_DEVICE C UpdatedAverage(C ema, C var, const Extras<R>& x) {
  return CanonicalNaN(x.ema_momentum * ema + x.one_minus_ema_momentum * var);
}

// One element of the update: what it stores, in the compute type, NaNs
// canonical (the slots' only with kCanonicalSlots). Every kernel (CPU loops, SIMD lanes, CUDA) stores through this,
// the variant V fixed at compile time. With V::kExtras, Keras's steps around
// the update, in Keras's order (real types only):
//   g   <- TransformedGradient(g)
//   var <- var - var * weight_decay * lr                        (V::Decays)
//   var, slots <- the update
//   ema <- ema_momentum * ema + one_minus_ema_momentum * var    (V::UpdatesEma)
// mg, mom and ema are read and written only where V has them.
// kCanonicalSlots false: ms, mg and mom keep whatever NaN the arithmetic
// gives, for a caller that stores no NaN's bits (int8 state: a NaN makes
// its block's scale NaN, and no code depends on a NaN's bits).
template <typename V, typename C, typename R, bool kCanonicalSlots = true>
RMSPROP_HOST_DEVICE void UpdateElement(C g, C& var, C& ms, C& mg, C& mom, C& ema,
                                       const Hyper<R>& h, const Extras<R>& x) {
  if constexpr (V::kExtras) {
    g = TransformedGradient<V::kTransform, C>(g, x);
    if (V::Decays(x)) var = var - var * x.weight_decay * h.lr;
  }
  const C delta = VariableDelta<V::kCentered, V::kMomentum, C>(g, ms, mg, mom, h);
  var = CanonicalNaN(var - delta);
  if (kCanonicalSlots) {
    ms = CanonicalNaN(ms);
    if (V::kCentered) mg = CanonicalNaN(mg);
    if (V::kMomentum) mom = CanonicalNaN(mom);
  }
  if constexpr (V::kExtras) {
    if (V::UpdatesEma(x)) ema = UpdatedAverage<C>(ema, var, x);
  }
}

// Whether d is a power of two whose reciprocal R holds as a normal number.
template <typename R>
inline bool IsPowerOfTwo(R d) {
  int exponent;
  const R reciprocal = R(1) / d;
  return std::isfinite(d) && std::fabs(std::frexp(d, &exponent)) == R(0.5) &&
         std::isnormal(d) && std::isnormal(reciprocal);
}

}  // namespace rmsprop_math

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_RMSPROP_MATH_H_
