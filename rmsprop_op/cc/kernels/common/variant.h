// One description of a variant of the update, and the one dispatch from its
// run-time description to compiled code, shared by the CPU loops and the
// CUDA kernels. No TensorFlow here.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_VARIANT_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_VARIANT_H_

#include <type_traits>

#include "rmsprop_op/cc/kernels/common/hyperparameters.h"

namespace rmsprop_math {

// How a loop computes the gradient step, chosen per op so that neutral
// divisions cost nothing: kNoTransform when every gradient step is neutral;
// kMultiplyTransform when grad_divisor is a power of two and there is no
// clip divisor (g / 2^k and g * 2^-k are the same real number, so they round
// alike: the same bits as Keras's division); else kFullTransform.
enum GradientTransform { kNoTransform, kMultiplyTransform, kFullTransform };

// A variant, fixed at compile time so that every loop body is branch-free:
// which slots exist (mg when centered, mom with momentum) and, with kExtras,
// Keras's steps around the update (the gradient step kTransform, weight
// decay, an EMA slot). With kStepsAtRunTime the decay and the EMA step are
// decided per call instead, by Extras::decay and Extras::ema: one compiled
// kernel for all four, where a branch costs nothing (the CUDA kernels are
// memory-bound) and compile time is not.
template <bool kCentered_, bool kMomentum_, bool kExtras_ = false,
          int kTransform_ = kNoTransform, bool kEma_ = false, bool kDecay_ = false,
          bool kStepsAtRunTime_ = false>
struct Variant {
  static constexpr bool kCentered = kCentered_;
  static constexpr bool kMomentum = kMomentum_;
  static constexpr bool kExtras = kExtras_;
  static constexpr int kTransform = kTransform_;
  static constexpr bool kEma = kEma_;
  static constexpr bool kDecay = kDecay_;
  static constexpr bool kStepsAtRunTime = kStepsAtRunTime_;

  // Whether this call decays the weights and updates an EMA slot.
  template <typename X>
  RMSPROP_HOST_DEVICE static bool Decays(const X& x) {
    return kDecay || (kStepsAtRunTime && x.decay);
  }
  template <typename X>
  RMSPROP_HOST_DEVICE static bool UpdatesEma(const X& x) {
    return kEma || (kStepsAtRunTime && x.ema);
  }
};

// The same, known at run time.
struct VariantChoice {
  bool centered = false;
  bool momentum = false;
  bool extras = false;
  int transform = kNoTransform;
  bool ema = false;
  bool decay = false;
};

template <typename F>
decltype(auto) WithBool(bool b, F&& f) {
  return b ? f(std::true_type()) : f(std::false_type());
}

template <typename F>
decltype(auto) WithTransform(int transform, F&& f) {
  switch (transform) {
    case kNoTransform:
      return f(std::integral_constant<int, kNoTransform>());
    case kMultiplyTransform:
      return f(std::integral_constant<int, kMultiplyTransform>());
    default:
      return f(std::integral_constant<int, kFullTransform>());
  }
}

// How a device compiles the extras: not at all (complex dtypes, the sparse
// update; choice.extras must be false), every step fixed at compile time
// (the CPU loops), the general gradient step with the decay and the EMA step
// fixed at compile time (the CPU loops of compact state, where decoding and
// encoding outweigh the gradient step, and three times the loops would
// triple their compile time), or the general gradient step with the decay
// and the EMA step at run time (the CUDA kernels). The general step gives
// the bits of the others: each of its steps is exact at its neutral value.
enum class ExtrasDispatch { kNone, kCompiled, kCompiledGeneralGradient, kAtRunTime };

// Returns f(Variant<...>()) for the variant `choice` describes.
template <ExtrasDispatch kExtrasDispatch, typename F>
decltype(auto) DispatchVariant(const VariantChoice& choice, F&& f) {
  return WithBool(choice.centered, [&](auto centered) {
    return WithBool(choice.momentum, [&](auto momentum) {
      constexpr bool kC = decltype(centered)::value;
      constexpr bool kM = decltype(momentum)::value;
      if constexpr (kExtrasDispatch == ExtrasDispatch::kAtRunTime) {
        if (choice.extras) {
          return f(Variant<kC, kM, true, kFullTransform, false, false, true>());
        }
      }
      if constexpr (kExtrasDispatch == ExtrasDispatch::kCompiledGeneralGradient) {
        if (choice.extras) {
          return WithBool(choice.ema, [&](auto ema) {
            return WithBool(choice.decay, [&](auto decay) {
              return f(Variant<kC, kM, true, kFullTransform, decltype(ema)::value,
                               decltype(decay)::value>());
            });
          });
        }
      }
      if constexpr (kExtrasDispatch == ExtrasDispatch::kCompiled) {
        if (choice.extras) {
          return WithTransform(choice.transform, [&](auto transform) {
            return WithBool(choice.ema, [&](auto ema) {
              return WithBool(choice.decay, [&](auto decay) {
                return f(Variant<kC, kM, true, decltype(transform)::value,
                                 decltype(ema)::value, decltype(decay)::value>());
              });
            });
          });
        }
      }
      return f(Variant<kC, kM>());
    });
  });
}

}  // namespace rmsprop_math

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_VARIANT_H_
