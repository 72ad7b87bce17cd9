// The OpKernel classes of the fused RMSProp ops, templated on the device.
// Compute() validates every input before the first write, then hands raw
// buffers to the device functor (rmsprop_functors.h).
#ifndef RMSPROP_OP_CC_KERNELS_RMSPROP_OP_KERNELS_H_
#define RMSPROP_OP_CC_KERNELS_RMSPROP_OP_KERNELS_H_

#include <cmath>
#include <complex>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rmsprop_op/cc/kernels/rmsprop_functors.h"
#include "rmsprop_op/cc/kernels/variable_access.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace rmsprop_op {

// Reads the four float64 host scalars and converts them to the real type of
// the compute type.
// (1 - rho) is formed in double, as Keras does with its Python float rho.
// epsilon goes under the root or, with the op's epsilon_after_sqrt attr,
// after it.
template <typename T>
absl::Status ReadHyperparameters(tensorflow::OpKernelContext* ctx,
                                 bool has_momentum_slot,
                                 bool epsilon_after_sqrt, HyperOf<T>* h) {
  double values[4];
  const char* names[4] = {"lr", "rho", "momentum", "epsilon"};
  for (int i = 0; i < 4; ++i) {
    const tensorflow::Tensor* t;
    TF_RETURN_IF_ERROR(ctx->input(names[i], &t));
    if (!tensorflow::TensorShapeUtils::IsScalar(t->shape())) {
      return absl::InvalidArgumentError(
          absl::StrCat(names[i], " must be a scalar, got shape ",
                       t->shape().DebugString()));
    }
    values[i] = t->scalar<double>()();
  }
  if (!has_momentum_slot && values[2] != 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("momentum is ", values[2],
                     " but no momentum slot (mom) was given; pass a mom "
                     "variable or momentum=0"));
  }
  using R = decltype(h->lr);
  const R epsilon = static_cast<R>(values[3]);
  *h = {static_cast<R>(values[0]), static_cast<R>(values[1]),
        static_cast<R>(1.0 - values[1]), static_cast<R>(values[2]),
        epsilon_after_sqrt ? R(0) : epsilon, epsilon_after_sqrt ? epsilon : R(0)};
  return absl::OkStatus();
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

// What the single-variable ops share: their attrs, looking up, locking and
// shape-checking var and its slots, and validating a sparse update. Base is
// OpKernel, or AsyncOpKernel for the GPU's sparse ops.
template <typename Device, typename T, bool kCentered,
          typename Base = tensorflow::OpKernel>
class SingleVariableOpBase : public Base {
 protected:
  explicit SingleVariableOpBase(tensorflow::OpKernelConstruction* ctx)
      : Base(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_locking", &use_locking_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_after_sqrt", &epsilon_after_sqrt_));
    int num_mom;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_momentum_slots", &num_mom));
    OP_REQUIRES(ctx, num_mom <= 1,
                absl::InvalidArgumentError(
                    "at most one momentum slot (mom) may be given"));
    layout_ = {1, kCentered, num_mom == 1, /*indexed=*/false};
  }

  // Looks up and locks var and its slots; every slot must have var's shape.
  absl::Status AcquireVariables(tensorflow::OpKernelContext* ctx, bool sparse,
                                LockedVariables<Device>* vars) const {
    std::vector<VariableInput> inputs;
    TF_RETURN_IF_ERROR(layout_.Inputs(ctx, &inputs));
    TF_RETURN_IF_ERROR(vars->Acquire(ctx, inputs,
                                     tensorflow::DataTypeToEnum<T>::v(),
                                     use_locking_, sparse));
    return layout_.CheckSlotShapes(*vars, 0);
  }

  // Reads and checks every input of a sparse update and locks the variables
  // (in *vars); *update points into them.
  template <typename Tindex>
  absl::Status PrepareSparse(tensorflow::OpKernelContext* ctx, HyperOf<T>* h,
                             LockedVariables<Device>* vars,
                             SparseUpdate<T, Tindex>* update) const {
    TF_RETURN_IF_ERROR(ReadHyperparameters<T>(ctx, layout_.momentum,
                                              epsilon_after_sqrt_, h));
    const tensorflow::Tensor* grad;
    TF_RETURN_IF_ERROR(ctx->input("grad", &grad));
    const tensorflow::Tensor* indices;
    TF_RETURN_IF_ERROR(ctx->input("indices", &indices));
    if (!tensorflow::TensorShapeUtils::IsVector(indices->shape())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "indices must be a vector, got shape ", indices->shape().DebugString()));
    }
    TF_RETURN_IF_ERROR(AcquireVariables(ctx, /*sparse=*/true, vars));
    const tensorflow::Tensor var = vars->tensor(layout_.var(0));
    if (var.dims() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "var must be at least 1-D for a sparse update, got shape ",
          var.shape().DebugString()));
    }
    const int64_t num_indices = indices->dim_size(0);
    tensorflow::TensorShape expected_grad_shape = var.shape();
    expected_grad_shape.set_dim(0, num_indices);
    if (grad->shape() != expected_grad_shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grad has shape ", grad->shape().DebugString(), " but must be ",
          expected_grad_shape.DebugString(), ": one row of var (shape ",
          var.shape().DebugString(), ") per index (", num_indices,
          " indices)"));
    }
    const int64_t num_rows = var.dim_size(0);
    *update = {layout_.template Slots<T>(TensorsOf(*vars), 0),
               grad->flat<T>().data(),
               indices->flat<Tindex>().data(),
               num_indices,
               num_rows,
               num_rows > 0 ? var.NumElements() / num_rows : 0};
    return absl::OkStatus();
  }

  static absl::Status BadIndexError(int64_t position, int64_t num_rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "indices[", position, "] is out of range: every index must be in [0, ",
        num_rows, "), the rows of var; nothing was updated"));
  }

  bool use_locking_;
  bool epsilon_after_sqrt_;
  VariableLayout layout_;
};

// FusedResourceApplyRMSProp and FusedResourceApplyCenteredRMSProp.
template <typename Device, typename T, bool kCentered>
class DenseApplyRMSPropOp : public SingleVariableOpBase<Device, T, kCentered> {
 public:
  explicit DenseApplyRMSPropOp(tensorflow::OpKernelConstruction* ctx)
      : SingleVariableOpBase<Device, T, kCentered>(ctx) {}

  void Compute(tensorflow::OpKernelContext* ctx) override {
    HyperOf<T> h;
    OP_REQUIRES_OK(ctx, ReadHyperparameters<T>(ctx, this->layout_.momentum,
                                                this->epsilon_after_sqrt_, &h));
    LockedVariables<Device> vars;
    OP_REQUIRES_OK(ctx, this->AcquireVariables(ctx, /*sparse=*/false, &vars));
    const tensorflow::Tensor* grad;
    OP_REQUIRES_OK(ctx, ctx->input("grad", &grad));
    const tensorflow::Tensor var = vars.tensor(this->layout_.var(0));
    OP_REQUIRES(ctx, grad->shape() == var.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "grad has shape ", grad->shape().DebugString(),
                    " but var has shape ", var.shape().DebugString(),
                    "; they must match")));
    if (var.NumElements() == 0) return;
    const std::vector<tensorflow::Tensor> tensors = TensorsOf(vars);
    const DenseUpdate<T> update = {this->layout_.template Slots<T>(tensors, 0),
                                   grad->flat<T>().data(), var.NumElements()};
    const DeviceStatus status = functor::DenseApplyRMSProp<Device, T>()(
        ctx->eigen_device<Device>(), &update, 1, h);
    OP_REQUIRES(ctx, status.ok(), DeviceError(status));
  }
};

// FusedResourceSparseApplyRMSProp and FusedResourceSparseApplyCenteredRMSProp.
template <typename Device, typename T, typename Tindex, bool kCentered>
class SparseApplyRMSPropOp : public SingleVariableOpBase<Device, T, kCentered> {
 public:
  explicit SparseApplyRMSPropOp(tensorflow::OpKernelConstruction* ctx)
      : SingleVariableOpBase<Device, T, kCentered>(ctx) {}

  void Compute(tensorflow::OpKernelContext* ctx) override {
    HyperOf<T> h;
    LockedVariables<Device> vars;
    SparseUpdate<T, Tindex> u;
    OP_REQUIRES_OK(ctx, this->PrepareSparse(ctx, &h, &vars, &u));
    const int64_t bad = functor::SparseApplyRMSProp<Device, T, Tindex>()(
        ctx->eigen_device<Device>(), u.slots, u.grad, u.indices,
        u.num_indices, u.num_rows, u.row_size, h);
    OP_REQUIRES(ctx, bad < 0, this->BadIndexError(bad, u.num_rows));
  }
};

// Reads and checks the grouped op's extras (rmsprop_math::Extras). Sets
// *any to whether one of them changes the update; clip_divisors gets one
// divisor per variable, or stays empty.
template <typename T>
absl::Status ReadExtras(tensorflow::OpKernelContext* ctx, int num_vars,
                        bool apply_weight_decay, bool has_ema, ExtrasOf<T>* x,
                        std::vector<double>* clip_divisors, bool* any) {
  const char* names[5] = {"grad_divisor", "clip_multiplier", "clip_value",
                          "weight_decay", "ema_momentum"};
  double values[5];
  for (int i = 0; i < 5; ++i) {
    const tensorflow::Tensor* t;
    TF_RETURN_IF_ERROR(ctx->input(names[i], &t));
    if (!tensorflow::TensorShapeUtils::IsScalar(t->shape())) {
      return absl::InvalidArgumentError(absl::StrCat(
          names[i], " must be a scalar, got shape ", t->shape().DebugString()));
    }
    values[i] = t->scalar<double>()();
  }
  const tensorflow::Tensor* divisors;
  TF_RETURN_IF_ERROR(ctx->input("clip_divisors", &divisors));
  if (!tensorflow::TensorShapeUtils::IsVector(divisors->shape()) ||
      (divisors->dim_size(0) != 0 && divisors->dim_size(0) != num_vars)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "clip_divisors must be a vector of 0 or ", num_vars,
        " values (one per variable), got shape ", divisors->shape().DebugString()));
  }
  const auto d = divisors->flat<double>();
  clip_divisors->assign(d.data(), d.data() + d.size());
  const double grad_divisor = values[0], clip_multiplier = values[1],
               clip_value = values[2], weight_decay = values[3],
               ema_momentum = values[4];
  // clip_multiplier and clip_divisors may be NaN or infinite: Keras's clip
  // factors are, for gradients whose norm is, and the update then stores NaN.
  if (!(grad_divisor != 0.0 && std::isfinite(grad_divisor))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grad_divisor (the loss scale factor) must be finite and nonzero, got ",
        grad_divisor));
  }
  if (!(clip_value > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "clip_value must be positive (+inf: no clipping), got ", clip_value));
  }
  if (!std::isfinite(weight_decay)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_decay must be finite, got ", weight_decay));
  }
  if (!(ema_momentum >= 0.0 && ema_momentum <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ema_momentum must be in [0, 1], got ", ema_momentum));
  }
  using R = decltype(x->grad_divisor);
  const R ema_m = static_cast<R>(ema_momentum);
  const R divisor = static_cast<R>(grad_divisor);
  *x = {divisor, R(1) / divisor, static_cast<R>(clip_multiplier), R(1),
        static_cast<R>(clip_value), static_cast<R>(weight_decay), ema_m,
        R(1) - ema_m, apply_weight_decay};
  *any = grad_divisor != 1.0 || clip_multiplier != 1.0 || !clip_divisors->empty() ||
         !std::isinf(clip_value) || apply_weight_decay || has_ema;
  return absl::OkStatus();
}

// FusedResourceGroupApplyRMSProp: many dense updates with shared
// hyperparameters, one op and one pass per variable, with Keras's steps
// around the update (the extras) in the same pass.
template <typename Device, typename T>
class GroupApplyRMSPropOp : public tensorflow::OpKernel {
 public:
  explicit GroupApplyRMSPropOp(tensorflow::OpKernelConstruction* ctx)
      : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_locking", &use_locking_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_after_sqrt", &epsilon_after_sqrt_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_vars", &num_vars_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_momentum_slots", &num_mom_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_mg_slots", &num_mg_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_ema_slots", &num_ema_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("apply_weight_decay", &apply_weight_decay_));
    OP_REQUIRES(ctx,
                (num_mom_ == 0 || num_mom_ == num_vars_) &&
                    (num_mg_ == 0 || num_mg_ == num_vars_) &&
                    (num_ema_ == 0 || num_ema_ == num_vars_),
                absl::InvalidArgumentError(
                    "mom, mg and ema must be empty or have one slot per variable"));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const bool has_mom = num_mom_ > 0;
    const bool centered = num_mg_ > 0;
    HyperOf<T> h;
    OP_REQUIRES_OK(ctx, ReadHyperparameters<T>(ctx, has_mom, epsilon_after_sqrt_, &h));
    ExtrasOf<T> extras;
    std::vector<double> clip_divisors;
    bool has_extras;
    OP_REQUIRES_OK(ctx, ReadExtras<T>(ctx, num_vars_, apply_weight_decay_,
                                      num_ema_ > 0, &extras, &clip_divisors,
                                      &has_extras));
    if (has_extras) {
      OP_REQUIRES(ctx, kExtrasSupported,
                  absl::UnimplementedError(
                      "the fused extras (loss scale, clipping, weight decay, EMA) "
                      "take real dtypes; nothing was updated"));
    }
    tensorflow::OpInputList grads;
    OP_REQUIRES_OK(ctx, ctx->input_list("grad", &grads));
    VariableLayout layout = {num_vars_, centered, has_mom, /*indexed=*/true};
    layout.ema = num_ema_ > 0;
    std::vector<VariableInput> inputs;
    OP_REQUIRES_OK(ctx, layout.Inputs(ctx, &inputs));
    LockedVariables<Device> vars;
    OP_REQUIRES_OK(ctx, vars.Acquire(ctx, inputs, tensorflow::DataTypeToEnum<T>::v(),
                                     use_locking_, /*sparse=*/false));
    const std::vector<tensorflow::Tensor> tensors = TensorsOf(vars);
    std::vector<DenseUpdate<T>> updates;
    updates.reserve(num_vars_);
    for (int i = 0; i < num_vars_; ++i) {
      OP_REQUIRES_OK(ctx, layout.CheckSlotShapes(vars, i));
      const tensorflow::Tensor& var = tensors[layout.var(i)];
      OP_REQUIRES(ctx, grads[i].shape() == var.shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "grad[", i, "] has shape ", grads[i].shape().DebugString(),
                      " but var[", i, "] has shape ", var.shape().DebugString(),
                      "; they must match")));
      if (var.NumElements() == 0) continue;
      updates.push_back({layout.Slots<T>(tensors, i), grads[i].flat<T>().data(),
                         var.NumElements(),
                         clip_divisors.empty() ? 1.0 : clip_divisors[i]});
    }
    if (updates.empty()) return;
    DeviceStatus status;
    if constexpr (kExtrasSupported) {
      if (has_extras) {
        status = functor::DenseApplyRMSPropWithExtras<Device, T>()(
            ctx->eigen_device<Device>(), updates.data(),
            static_cast<int>(updates.size()), h, extras);
        OP_REQUIRES(ctx, status.ok(), DeviceError(status));
        return;
      }
    }
    status = functor::DenseApplyRMSProp<Device, T>()(
        ctx->eigen_device<Device>(), updates.data(),
        static_cast<int>(updates.size()), h);
    OP_REQUIRES(ctx, status.ok(), DeviceError(status));
  }

 private:
  static constexpr bool kExtrasSupported =
      !std::is_same<T, std::complex<float>>::value &&
      !std::is_same<T, std::complex<double>>::value;

  bool use_locking_;
  bool epsilon_after_sqrt_;
  bool apply_weight_decay_;
  int num_vars_;
  int num_mom_;
  int num_mg_;
  int num_ema_;
};

// FusedGradientSquaredNorms.
template <typename Device, typename T>
class GradientSquaredNormsOp : public tensorflow::OpKernel {
 public:
  explicit GradientSquaredNormsOp(tensorflow::OpKernelConstruction* ctx)
      : OpKernel(ctx) {}

  void Compute(tensorflow::OpKernelContext* ctx) override {
    tensorflow::OpInputList grads;
    OP_REQUIRES_OK(ctx, ctx->input_list("grad", &grads));
    const tensorflow::Tensor& divisor = ctx->input(grads.size());
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsScalar(divisor.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "divisor must be a scalar, got shape ",
                    divisor.shape().DebugString())));
    const double div = divisor.scalar<double>()();
    OP_REQUIRES(ctx, div != 0.0 && std::isfinite(div),
                absl::InvalidArgumentError(absl::StrCat(
                    "divisor (the loss scale factor) must be finite and nonzero, got ",
                    div)));
    tensorflow::Tensor* out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, tensorflow::TensorShape({grads.size()}), &out));
    std::vector<const T*> data(grads.size());
    std::vector<int64_t> sizes(grads.size());
    for (int i = 0; i < grads.size(); ++i) {
      data[i] = grads[i].flat<T>().data();
      sizes[i] = grads[i].NumElements();
    }
    if (grads.size() == 0) return;
    const DeviceStatus status = functor::SquaredNorms<Device, T>()(
        ctx->eigen_device<Device>(), data.data(), sizes.data(), grads.size(),
        div, out->flat<double>().data());
    OP_REQUIRES(ctx, status.ok(), DeviceError(status));
  }
};

// The kernel builder of op NAME on one device; the hyperparameters are host
// scalars on every device.
#define RMSPROP_KERNEL_BUILDER(NAME, DEVICE_TYPE, T)                    \
  Name(NAME)                                                            \
      .Device(DEVICE_TYPE)                                              \
      .HostMemory("lr")                                                 \
      .HostMemory("rho")                                                \
      .HostMemory("momentum")                                           \
      .HostMemory("epsilon")                                            \
      .TypeConstraint<T>("T")

// Registers the op kernels of one device for one variable dtype; SPARSE_OP is
// the sparse ops' kernel class (the GPU's is asynchronous).
#define RMSPROP_REGISTER_KERNELS(DEVICE, DEVICE_TYPE, T, SPARSE_OP)              \
  REGISTER_KERNEL_BUILDER(                                                       \
      RMSPROP_KERNEL_BUILDER("FusedResourceApplyRMSProp", DEVICE_TYPE, T),       \
      ::rmsprop_op::DenseApplyRMSPropOp<DEVICE, T, false>);                      \
  REGISTER_KERNEL_BUILDER(                                                       \
      RMSPROP_KERNEL_BUILDER("FusedResourceApplyCenteredRMSProp", DEVICE_TYPE, T), \
      ::rmsprop_op::DenseApplyRMSPropOp<DEVICE, T, true>);                       \
  REGISTER_KERNEL_BUILDER(                                                       \
      RMSPROP_KERNEL_BUILDER("FusedResourceGroupApplyRMSProp", DEVICE_TYPE, T)   \
          .HostMemory("grad_divisor")                                            \
          .HostMemory("clip_multiplier")                                         \
          .HostMemory("clip_divisors")                                           \
          .HostMemory("clip_value")                                              \
          .HostMemory("weight_decay")                                            \
          .HostMemory("ema_momentum"),                                           \
      ::rmsprop_op::GroupApplyRMSPropOp<DEVICE, T>);                             \
  RMSPROP_REGISTER_SPARSE_KERNELS(DEVICE, DEVICE_TYPE, T, int32_t, SPARSE_OP);   \
  RMSPROP_REGISTER_SPARSE_KERNELS(DEVICE, DEVICE_TYPE, T, int64_t, SPARSE_OP)

// Registers FusedGradientSquaredNorms of one device for one real dtype.
#define RMSPROP_REGISTER_NORMS_KERNEL(DEVICE, DEVICE_TYPE, T)                      \
  REGISTER_KERNEL_BUILDER(Name("FusedGradientSquaredNorms")                      \
                              .Device(DEVICE_TYPE)                               \
                              .HostMemory("divisor")                             \
                              .TypeConstraint<T>("T"),                           \
                          ::rmsprop_op::GradientSquaredNormsOp<DEVICE, T>);

#define RMSPROP_REGISTER_SPARSE_KERNELS(DEVICE, DEVICE_TYPE, T, Tindex, SPARSE_OP) \
  REGISTER_KERNEL_BUILDER(                                                      \
      RMSPROP_KERNEL_BUILDER("FusedResourceSparseApplyRMSProp", DEVICE_TYPE, T) \
          .TypeConstraint<Tindex>("Tindices"),                                  \
      SPARSE_OP<DEVICE, T, Tindex, false>);                                     \
  REGISTER_KERNEL_BUILDER(                                                      \
      RMSPROP_KERNEL_BUILDER("FusedResourceSparseApplyCenteredRMSProp",         \
                             DEVICE_TYPE, T)                                    \
          .TypeConstraint<Tindex>("Tindices"),                                  \
      SPARSE_OP<DEVICE, T, Tindex, true>)

}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_RMSPROP_OP_KERNELS_H_
