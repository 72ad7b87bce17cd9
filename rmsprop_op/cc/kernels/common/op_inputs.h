// Reading and checking the inputs of the fused RMSProp ops: the scalars
// (each list of hyperparameters.h read by name), and where each variable of
// an update sits among the resources an op locks.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_OP_INPUTS_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_OP_INPUTS_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/hyperparameters.h"
#include "rmsprop_op/cc/kernels/common/variable_access.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace rmsprop_op {

// The float64 host scalar input `name`.
inline absl::Status ReadScalar(tensorflow::OpKernelContext* ctx, const char* name,
                               double* value) {
  const tensorflow::Tensor* t;
  TF_RETURN_IF_ERROR(ctx->input(name, &t));
  if (!tensorflow::TensorShapeUtils::IsScalar(t->shape())) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " must be a scalar, got shape ", t->shape().DebugString()));
  }
  *value = t->scalar<double>()();
  return absl::OkStatus();
}

// The hyperparameters in the real type of the compute type, each read by
// `read(name, &value)` (an op's host input, or an XLA custom call's operand).
// (1 - rho) is formed in double, as Keras does with its Python float rho;
// epsilon goes under the root or, with the op's epsilon_after_sqrt attr,
// after it.
template <typename T, typename Read>
absl::Status HyperparametersFrom(const Read& read, bool has_momentum_slot,
                                 bool epsilon_after_sqrt, HyperOf<T>* h) {
  rmsprop_math::Hyper<double> in = {};
#define RMSPROP_READ(name) TF_RETURN_IF_ERROR(read(#name, &in.name));
  RMSPROP_HYPERPARAMETERS(RMSPROP_READ)
#undef RMSPROP_READ
  if (!has_momentum_slot && in.momentum != 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("momentum is ", in.momentum,
                     " but no momentum slot (mom) was given; pass a mom "
                     "variable or momentum=0"));
  }
  rmsprop_math::Derive(in, epsilon_after_sqrt);
  using R = decltype(h->lr);
  *h = rmsprop_math::ConvertAll<R>(in, [](double v) { return static_cast<R>(v); });
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadHyperparameters(tensorflow::OpKernelContext* ctx,
                                 bool has_momentum_slot,
                                 bool epsilon_after_sqrt, HyperOf<T>* h) {
  return HyperparametersFrom<T>(
      [ctx](const char* name, double* v) { return ReadScalar(ctx, name, v); },
      has_momentum_slot, epsilon_after_sqrt, h);
}

// Checks the grouped op's extras (rmsprop_math::Extras), each read by
// `read(name, &value)`, and forms them in the real type of the compute type.
// Sets *any to whether one of them changes the update; num_clip_divisors is
// 0 or one per variable.
template <typename T, typename Read>
absl::Status ExtrasFrom(const Read& read, int64_t num_clip_divisors,
                        bool apply_weight_decay, bool has_ema, ExtrasOf<T>* x,
                        bool* any) {
  rmsprop_math::Extras<double> in = {};
#define RMSPROP_READ(name, ...) TF_RETURN_IF_ERROR(read(#name, &in.name));
  RMSPROP_EXTRAS(RMSPROP_READ)
#undef RMSPROP_READ
  // clip_multiplier and clip_divisors may be NaN or infinite: Keras's clip
  // factors are, for gradients whose norm is, and the update then stores NaN.
  in.keeps_gradient = true;
#define RMSPROP_CHECK(name, requirement, valid, neutral)     \
  {                                                         \
    const double v = in.name;                               \
    if (!(valid)) {                                         \
      return absl::InvalidArgumentError(                    \
          absl::StrCat(#name " " requirement ", got ", v)); \
    }                                                       \
    in.keeps_gradient = in.keeps_gradient && (neutral);     \
  }
  RMSPROP_EXTRAS(RMSPROP_CHECK)
#undef RMSPROP_CHECK
  *any = !in.keeps_gradient || num_clip_divisors > 0 || apply_weight_decay || has_ema;
  using R = decltype(x->grad_divisor);
  *x = rmsprop_math::ConvertAll<R>(in, [](double v) { return static_cast<R>(v); });
  x->grad_multiplier = R(1) / x->grad_divisor;
  x->clip_divisor = R(1);
  x->one_minus_ema_momentum = R(1) - x->ema_momentum;
  x->decay = apply_weight_decay;
  x->ema = has_ema;
  return absl::OkStatus();
}

// The error for clip_divisors of the wrong shape.
inline absl::Status ClipDivisorsShapeError(int num_vars,
                                           const tensorflow::TensorShape& shape) {
  return absl::InvalidArgumentError(absl::StrCat(
      "clip_divisors must be a vector of 0 or ", num_vars,
      " values (one per variable), got shape ", shape.DebugString()));
}

// The grouped op's extras read from its inputs; clip_divisors gets one
// divisor per variable, or stays empty.
template <typename T>
absl::Status ReadExtras(tensorflow::OpKernelContext* ctx, int num_vars,
                        bool apply_weight_decay, bool has_ema, ExtrasOf<T>* x,
                        std::vector<double>* clip_divisors, bool* any) {
  const tensorflow::Tensor* divisors;
  TF_RETURN_IF_ERROR(ctx->input("clip_divisors", &divisors));
  if (!tensorflow::TensorShapeUtils::IsVector(divisors->shape()) ||
      (divisors->dim_size(0) != 0 && divisors->dim_size(0) != num_vars)) {
    return ClipDivisorsShapeError(num_vars, divisors->shape());
  }
  const auto d = divisors->flat<double>();
  clip_divisors->assign(d.data(), d.data() + d.size());
  return ExtrasFrom<T>(
      [ctx](const char* name, double* v) { return ReadScalar(ctx, name, v); },
      d.size(), apply_weight_decay, has_ema, x, any);
}

// Where each variable of an update sits among the resources an op locks:
// the n variables first, then one block of n per slot, in the order
// var, ms, mg, mom, ema (mg, mom and ema blocks only when present). The one place that
// knows this order; the ops' own input order (var, mg, ms, mom) is by name.
struct VariableLayout {
  int num_vars;  // 1 for the single-variable ops
  bool centered;
  bool momentum;
  bool indexed;  // name variables "var[i]" in errors (the grouped op)
  bool ema = false;  // the grouped op's EMA slots

  int var(int i) const { return i; }
  int ms(int i) const { return num_vars + i; }
  int mg(int i) const { return centered ? 2 * num_vars + i : -1; }
  int mom(int i) const {
    return momentum ? (centered ? 3 : 2) * num_vars + i : -1;
  }
  int ema_slot(int i) const {
    return ema ? (2 + centered + momentum) * num_vars + i : -1;
  }
  int num_variables() const { return (2 + centered + momentum + ema) * num_vars; }

  // The op's resource inputs in this order, looked up by name.
  absl::Status Inputs(tensorflow::OpKernelContext* ctx,
                      std::vector<VariableInput>* inputs) const {
    TF_RETURN_IF_ERROR(NamedVariableInputs(ctx, "var", indexed, inputs));
    TF_RETURN_IF_ERROR(NamedVariableInputs(ctx, "ms", indexed, inputs));
    if (centered) TF_RETURN_IF_ERROR(NamedVariableInputs(ctx, "mg", indexed, inputs));
    if (momentum) TF_RETURN_IF_ERROR(NamedVariableInputs(ctx, "mom", indexed, inputs));
    if (ema) TF_RETURN_IF_ERROR(NamedVariableInputs(ctx, "ema", indexed, inputs));
    return absl::OkStatus();
  }

  // Every slot of variable i must have its shape.
  template <typename Device>
  absl::Status CheckSlotShapes(const LockedVariables<Device>& vars, int i) const {
    const tensorflow::TensorShape& shape = vars.tensor(var(i)).shape();
    for (int pos : {ms(i), mg(i), mom(i), ema_slot(i)}) {
      if (pos < 0 || vars.tensor(pos).shape() == shape) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          vars.name(pos), " has shape ", vars.tensor(pos).shape().DebugString(),
          " but ", vars.name(var(i)), " has shape ", shape.DebugString(),
          "; a slot must have the shape of its variable"));
    }
    return absl::OkStatus();
  }

  template <typename T>
  SlotPointers<T> Slots(const std::vector<tensorflow::Tensor>& tensors, int i) const {
    auto ptr = [&](int pos) -> T* {
      return pos < 0 ? nullptr : const_cast<T*>(tensors[pos].flat<T>().data());
    };
    return {ptr(var(i)), ptr(ms(i)), ptr(mg(i)), ptr(mom(i)), ptr(ema_slot(i))};
  }
};

// The op's error for a device functor that failed.
inline absl::Status DeviceError(const DeviceStatus& status) {
  if (status.out_of_memory) {
    return absl::ResourceExhaustedError(
        "out of device memory for the op's scratch buffers; nothing was "
        "updated");
  }
  return absl::InternalError(absl::StrCat(
      "CUDA error in ", status.failed_step, ": ", status.message,
      " (the variables may be partly updated)"));
}

template <typename Device>
std::vector<tensorflow::Tensor> TensorsOf(const LockedVariables<Device>& vars) {
  std::vector<tensorflow::Tensor> tensors;
  tensors.reserve(vars.size());
  for (int i = 0; i < vars.size(); ++i) tensors.push_back(vars.tensor(i));
  return tensors;
}

// The error for a sparse update's index outside the rows of var.
inline absl::Status BadIndexError(int64_t position, int64_t num_rows) {
  return absl::InvalidArgumentError(absl::StrCat(
      "indices[", position, "] is out of range: every index must be in [0, ",
      num_rows, "), the rows of var; nothing was updated"));
}

// The squared norms' divisor (the loss scale factor) must be finite and
// nonzero.
inline absl::Status CheckNormsDivisor(double divisor) {
  if (divisor != 0.0 && std::isfinite(divisor)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "divisor (the loss scale factor) must be finite and nonzero, got ", divisor));
}

// What a sparse update needs once its inputs are validated.
template <typename T, typename Tindex>
struct SparseUpdate {
  SlotPointers<T> slots;
  const T* grad;
  const Tindex* indices;
  int64_t num_indices;
  int64_t num_rows;
  int64_t row_size;
};

}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_OP_INPUTS_H_
