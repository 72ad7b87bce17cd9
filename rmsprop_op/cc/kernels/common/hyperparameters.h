// The scalar inputs of the ops, listed once. Each list feeds the op
// registrations (inputs, HostMemory), the kernels' readers and checks, the
// structs the formula reads, and every conversion of those structs (to SIMD
// lanes, to the GPU's compute reals). No TensorFlow here.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_HYPERPARAMETERS_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_HYPERPARAMETERS_H_

// The hyperparameters of every op: X(name), each a float64 host scalar.
#define RMSPROP_HYPERPARAMETERS(X) X(lr) X(rho) X(momentum) X(epsilon)

// The grouped op's extras, Keras's steps around the update, each a float64
// host scalar: X(name, what it must be, whether its value v is valid,
// whether v leaves the gradient as it is). weight_decay and ema_momentum
// act through the op's apply_weight_decay attr and its ema slots. (The
// per-variable clip_divisors is a vector input of its own.)
#define RMSPROP_EXTRAS(X)                                                        \
  X(grad_divisor, "(the loss scale factor) must be finite and nonzero",        \
    v != 0.0 && std::isfinite(v), v == 1.0)                                    \
  X(clip_multiplier, "", true, v == 1.0)                                       \
  X(clip_value, "must be positive (+inf: no clipping)", v > 0.0, std::isinf(v)) \
  X(weight_decay, "must be finite", std::isfinite(v), true)                    \
  X(ema_momentum, "must be in [0, 1]", v >= 0.0 && v <= 1.0, true)

#include <cmath>

#if defined(__CUDACC__)
#define RMSPROP_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define RMSPROP_HOST_DEVICE inline
#endif

namespace rmsprop_math {

// Hyperparameters in the real type R of the compute type (float for half,
// bfloat16, float and complex64 variables; double for double and
// complex128). Besides the inputs, what the formula reads formed once:
// one_minus_rho in double from rho, as Keras does with its Python float;
// epsilon under the root (Keras 3, TensorFlow's training ops) or after it
// (tf_keras's RMSprop without momentum), the other 0, which changes no bit
// of the other placement (x + 0 == x for the non-negative ms and the root)
// and keeps one loop body.
#define RMSPROP_HYPER_DERIVED(X) X(one_minus_rho) X(epsilon_in_sqrt) X(epsilon_after_sqrt)

// Keras's steps around the update; besides the inputs: grad_multiplier
// (1 / grad_divisor), the variable's own clipnorm divisor, and
// one_minus_ema_momentum (1 - ema_momentum in R, as Keras computes it).
#define RMSPROP_EXTRAS_DERIVED(X) X(grad_multiplier) X(clip_divisor) X(one_minus_ema_momentum)

#define RMSPROP_FIELD(name, ...) R name;
template <typename R>
struct Hyper {
  RMSPROP_HYPERPARAMETERS(RMSPROP_FIELD)
  RMSPROP_HYPER_DERIVED(RMSPROP_FIELD)
};
template <typename R>
struct Extras {
  RMSPROP_EXTRAS(RMSPROP_FIELD)
  RMSPROP_EXTRAS_DERIVED(RMSPROP_FIELD)
  // Whether the weights decay and an EMA slot is updated, for the variants
  // that decide these at run time (variant.h); whether every input leaves
  // the gradient as it is (RMSPROP_EXTRAS' last column).
  bool decay;
  bool ema;
  bool keeps_gradient;
};
#undef RMSPROP_FIELD

// The derived fields of hyperparameters read in double (lr, rho, momentum,
// epsilon set).
inline void Derive(Hyper<double>& h, bool epsilon_after_sqrt) {
  h.one_minus_rho = 1.0 - h.rho;
  h.epsilon_in_sqrt = epsilon_after_sqrt ? 0.0 : h.epsilon;
  h.epsilon_after_sqrt = epsilon_after_sqrt ? h.epsilon : 0.0;
}

// Every field converted by `convert` (to SIMD lanes, to the GPU's reals).
#define RMSPROP_CONVERT_FIELD(name, ...) out.name = convert(in.name);
template <typename To, typename From, typename Convert>
RMSPROP_HOST_DEVICE Hyper<To> ConvertAll(const Hyper<From>& in, Convert convert) {
  Hyper<To> out;
  RMSPROP_HYPERPARAMETERS(RMSPROP_CONVERT_FIELD)
  RMSPROP_HYPER_DERIVED(RMSPROP_CONVERT_FIELD)
  return out;
}
template <typename To, typename From, typename Convert>
RMSPROP_HOST_DEVICE Extras<To> ConvertAll(const Extras<From>& in, Convert convert) {
  Extras<To> out;
  RMSPROP_EXTRAS(RMSPROP_CONVERT_FIELD)
  RMSPROP_EXTRAS_DERIVED(RMSPROP_CONVERT_FIELD)
  out.decay = in.decay;
  out.ema = in.ema;
  out.keeps_gradient = in.keeps_gradient;
  return out;
}
#undef RMSPROP_CONVERT_FIELD

}  // namespace rmsprop_math

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_HYPERPARAMETERS_H_
