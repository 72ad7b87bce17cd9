// The RMSProp update formula, written once.
//
// Every implementation in this project (CPU kernels, CUDA kernels, and, by
// line-for-line mirroring, the XLA fallback in keras_optimizer/rmsprop.py and
// the NumPy reference in tests/reference.py) follows these functions. The
// header has no TensorFlow dependency so that the standalone CUDA checker can
// include it too.
//
// The evaluation order matches Keras 3's RMSprop (rho*ms + (1-rho)*g^2, then
// (lr*g)/sqrt(denom)) so that our results agree with the stock optimizer to
// the last bit in float32; TensorFlow's ResourceApplyRMSProp writes
// ms + (g^2-ms)*(1-rho), which differs by a few ulps.
#ifndef RMSPROP_OP_CC_KERNELS_RMSPROP_MATH_H_
#define RMSPROP_OP_CC_KERNELS_RMSPROP_MATH_H_

#include <cmath>

#if defined(__CUDACC__)
#define RMSPROP_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define RMSPROP_HOST_DEVICE inline
#endif

namespace rmsprop_math {

// Hyperparameters in the compute type C (float for half, bfloat16 and float
// variables; double for double variables). one_minus_rho is computed in
// double from rho by the caller, as Keras does with its Python float.
//
// Epsilon goes under the root (Keras 3, TensorFlow's training ops) or after
// it (tf_keras's RMSprop without momentum); the caller sets one of the two
// and leaves the other 0, which changes no bit of the other placement
// (x + 0 == x for the non-negative ms and the root) and keeps one loop body.
template <typename C>
struct Hyper {
  C lr;
  C rho;
  C one_minus_rho;
  C momentum;
  C epsilon_in_sqrt;
  C epsilon_after_sqrt;
};

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

// lr*g / (sqrt(denom + epsilon_in_sqrt) + epsilon_after_sqrt).
template <typename C>
RMSPROP_HOST_DEVICE C ScaledStep(C g, C denom, const Hyper<C>& h) {
  return (h.lr * g) / (Sqrt<C>(denom + h.epsilon_in_sqrt) + h.epsilon_after_sqrt);
}

// Updates the mean square `ms` and returns the step lr*g/sqrt(ms + epsilon).
template <typename C>
RMSPROP_HOST_DEVICE C PlainStep(C g, C& ms, const Hyper<C>& h) {
  ms = h.rho * ms + h.one_minus_rho * (g * g);
  return ScaledStep<C>(g, ms, h);
}

// Updates `ms` and the mean gradient `mg` and returns
// lr*g/sqrt(ms - mg^2 + epsilon).
template <typename C>
RMSPROP_HOST_DEVICE C CenteredStep(C g, C& ms, C& mg, const Hyper<C>& h) {
  ms = h.rho * ms + h.one_minus_rho * (g * g);
  mg = h.rho * mg + h.one_minus_rho * g;
  return ScaledStep<C>(g, ms - mg * mg, h);
}

// With a momentum slot the variable moves by the accumulated momentum.
template <typename C>
RMSPROP_HOST_DEVICE C MomentumDelta(C step, C& mom, const Hyper<C>& h) {
  mom = h.momentum * mom + step;
  return mom;
}

// One element of the update, all four variants. kCentered and kMomentum are
// compile-time so that every variant compiles to a branch-free loop body.
template <bool kCentered, bool kMomentum, typename C>
RMSPROP_HOST_DEVICE C UpdateElement(C g, C& ms, C& mg, C& mom,
                                    const Hyper<C>& h) {
  const C step = kCentered ? CenteredStep<C>(g, ms, mg, h)
                           : PlainStep<C>(g, ms, h);
  return kMomentum ? MomentumDelta<C>(step, mom, h) : step;
}

}  // namespace rmsprop_math

#endif  // RMSPROP_OP_CC_KERNELS_RMSPROP_MATH_H_
