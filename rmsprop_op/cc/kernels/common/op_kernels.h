// The OpKernel classes of the fused RMSProp ops, templated on the device.
// Compute() validates every input before the first write, then hands raw
// buffers to the device functor (functors.h).
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_OP_KERNELS_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_OP_KERNELS_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/op_inputs.h"
#include "rmsprop_op/cc/kernels/common/variable_access.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace rmsprop_op {

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
        ctx->eigen_device<Device>(), &update, 1, h, /*x=*/nullptr);
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
    OP_REQUIRES(ctx, bad < 0, BadIndexError(bad, u.num_rows));
  }
};

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
      OP_REQUIRES(ctx, kIsReal<T>,
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
    const DeviceStatus status = functor::DenseApplyRMSProp<Device, T>()(
        ctx->eigen_device<Device>(), updates.data(), static_cast<int>(updates.size()), h,
        has_extras ? &extras : nullptr);
    OP_REQUIRES(ctx, status.ok(), DeviceError(status));
  }

 private:
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
    OP_REQUIRES_OK(ctx, CheckNormsDivisor(div));
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

}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_OP_KERNELS_H_
