// The OpKernel classes of the fused RMSProp ops with compact state
// (FusedResource[Sparse]Apply[Centered]CompactRMSProp), templated on the
// device. Compute() validates every input before the first write, then
// hands raw buffers to the device functor (compact_functors.h).
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_OP_KERNELS_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_OP_KERNELS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rmsprop_op/cc/kernels/common/compact_format.h"
#include "rmsprop_op/cc/kernels/common/compact_functors.h"
#include "rmsprop_op/cc/kernels/common/op_inputs.h"
#include "rmsprop_op/cc/kernels/common/variable_access.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace rmsprop_op {

// A compact op's slots: ms, then mg (centered), then mom (with momentum),
// each as its state variables (int8: codes, scales; bfloat16: one), then
// the dense ops' EMA slot (a float32 variable) where given.
struct CompactLayout {
  StateFormat format;
  bool centered;
  bool momentum;
  bool ema = false;

  int vars_per_slot() const { return format == StateFormat::kInt8 ? 2 : 1; }

  // The resource inputs in the order var, ms, mg, mom, named for errors,
  // and the dtype each must have.
  absl::Status Inputs(tensorflow::OpKernelContext* ctx, std::vector<VariableInput>* inputs,
                      std::vector<tensorflow::DataType>* dtypes) const {
    int start, stop;
    TF_RETURN_IF_ERROR(ctx->op_kernel().InputRange("var", &start, &stop));
    inputs->push_back({start, "var", -1});
    dtypes->push_back(tensorflow::DT_FLOAT);
    struct Slot {
      const char* name;
      bool present;
      const char* codes;
      const char* scales;
      tensorflow::DataType codes_dtype;
    };
    const Slot slots[] = {
        {"ms", true, "ms codes", "ms scales", tensorflow::DT_UINT8},
        {"mg", centered, "mg codes", "mg scales", tensorflow::DT_INT8},
        {"mom", momentum, "mom codes", "mom scales", tensorflow::DT_INT8},
    };
    for (const Slot& slot : slots) {
      if (!slot.present) continue;
      TF_RETURN_IF_ERROR(ctx->op_kernel().InputRange(slot.name, &start, &stop));
      if (stop - start != vars_per_slot()) {
        return absl::InvalidArgumentError(absl::StrCat(
            slot.name, " must be ", vars_per_slot(), " variable(s) for this state_format, got ",
            stop - start));
      }
      if (format == StateFormat::kInt8) {
        inputs->push_back({start, slot.codes, -1});
        dtypes->push_back(slot.codes_dtype);
        inputs->push_back({start + 1, slot.scales, -1});
        dtypes->push_back(tensorflow::DT_FLOAT);
      } else {
        inputs->push_back({start, slot.name, -1});
        dtypes->push_back(tensorflow::DT_BFLOAT16);
      }
    }
    if (ema) {
      TF_RETURN_IF_ERROR(ctx->op_kernel().InputRange("ema", &start, &stop));
      inputs->push_back({start, "ema", -1});
      dtypes->push_back(tensorflow::DT_FLOAT);
    }
    return absl::OkStatus();
  }
};

// The layout compact_state.block_layout gives a shape: rows = shape[0]
// (1 for a scalar), columns the product of the other dimensions.
inline BlockLayout BlockLayoutOf(const tensorflow::TensorShape& shape) {
  int64_t columns = 1;
  for (int d = 1; d < shape.dims(); ++d) columns *= shape.dim_size(d);
  return BlockLayout::Of(shape.dims() > 0 ? shape.dim_size(0) : 1, columns);
}

// Base: tensorflow::OpKernel, or AsyncOpKernel for the GPU's sparse ops.
template <typename Device, bool kCentered, typename Base = tensorflow::OpKernel>
class CompactApplyOpBase : public Base {
 protected:
  explicit CompactApplyOpBase(tensorflow::OpKernelConstruction* ctx) : Base(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_locking", &use_locking_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_after_sqrt", &epsilon_after_sqrt_));
    std::string format;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("state_format", &format));
    int num_state_vars, num_mom;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_state_vars", &num_state_vars));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_momentum_vars", &num_mom));
    layout_ = {format == "int8" ? StateFormat::kInt8 : StateFormat::kBfloat16, kCentered,
               num_mom > 0};
    OP_REQUIRES(ctx, num_state_vars == layout_.vars_per_slot(),
                absl::InvalidArgumentError(absl::StrCat(
                    "state_format ", format, " keeps a slot in ", layout_.vars_per_slot(),
                    " variable(s), got num_state_vars=", num_state_vars)));
    OP_REQUIRES(ctx, num_mom == 0 || num_mom == num_state_vars,
                absl::InvalidArgumentError(absl::StrCat(
                    "mom must be empty or ", num_state_vars, " variable(s), got ", num_mom)));
  }

  // Reads the scalars, looks up and locks var and its slots, and checks
  // every shape; *u points into the locked variables.
  absl::Status Prepare(tensorflow::OpKernelContext* ctx, bool sparse,
                       rmsprop_math::Hyper<float>* h, LockedVariables<Device>* vars,
                       CompactUpdate* u) const {
    TF_RETURN_IF_ERROR(
        ReadHyperparameters<float>(ctx, layout_.momentum, epsilon_after_sqrt_, h));
    std::vector<VariableInput> inputs;
    std::vector<tensorflow::DataType> dtypes;
    TF_RETURN_IF_ERROR(layout_.Inputs(ctx, &inputs, &dtypes));
    TF_RETURN_IF_ERROR(vars->Acquire(ctx, std::move(inputs), std::move(dtypes),
                                     /*dtypes_differ=*/true, use_locking_, sparse));
    const tensorflow::Tensor& var = vars->tensor(0);
    const BlockLayout blocks = BlockLayoutOf(var.shape());
    const tensorflow::TensorShape scales_shape({blocks.row_blocks, blocks.column_blocks});
    CompactSlot* slots[] = {&u->ms, &u->mg, &u->mom};
    const bool present[] = {true, layout_.centered, layout_.momentum};
    int pos = 1;
    for (int s = 0; s < 3; ++s) {
      if (!present[s]) continue;
      const tensorflow::Tensor& state = vars->tensor(pos);
      if (state.shape() != var.shape()) {
        return absl::InvalidArgumentError(absl::StrCat(
            vars->name(pos), " has shape ", state.shape().DebugString(),
            " but var has shape ", var.shape().DebugString(),
            "; a slot must have the shape of its variable; nothing was updated"));
      }
      if (layout_.format == StateFormat::kInt8) {
        const tensorflow::Tensor& scales = vars->tensor(pos + 1);
        if (scales.shape() != scales_shape) {
          return absl::InvalidArgumentError(absl::StrCat(
              vars->name(pos + 1), " has shape ", scales.shape().DebugString(), " but must be ",
              scales_shape.DebugString(), " (compact_state.scales_shape of var's shape ",
              var.shape().DebugString(), "); nothing was updated"));
        }
        slots[s]->codes = const_cast<uint8_t*>(
            reinterpret_cast<const uint8_t*>(state.tensor_data().data()));
        slots[s]->scales = const_cast<float*>(scales.flat<float>().data());
        pos += 2;
      } else {
        slots[s]->bfloat16 = const_cast<uint16_t*>(
            reinterpret_cast<const uint16_t*>(state.tensor_data().data()));
        pos += 1;
      }
    }
    if (layout_.ema) {
      const tensorflow::Tensor& ema = vars->tensor(pos);
      if (ema.shape() != var.shape()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ema has shape ", ema.shape().DebugString(), " but var has shape ",
            var.shape().DebugString(), "; an EMA slot must have the shape of its variable; "
            "nothing was updated"));
      }
      u->ema = const_cast<float*>(ema.flat<float>().data());
    }
    const tensorflow::Tensor* grad;
    TF_RETURN_IF_ERROR(ctx->input("grad", &grad));
    tensorflow::TensorShape expected_grad = var.shape();
    if (sparse) {
      const tensorflow::Tensor* indices;
      TF_RETURN_IF_ERROR(ctx->input("indices", &indices));
      if (!tensorflow::TensorShapeUtils::IsVector(indices->shape())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "indices must be a vector, got shape ", indices->shape().DebugString()));
      }
      if (var.dims() < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "var must be at least 1-D for a sparse update, got shape ",
            var.shape().DebugString()));
      }
      expected_grad.set_dim(0, indices->dim_size(0));
      if (grad->shape() != expected_grad) {
        return absl::InvalidArgumentError(absl::StrCat(
            "grad has shape ", grad->shape().DebugString(), " but must be ",
            expected_grad.DebugString(), ": one row of var (shape ", var.shape().DebugString(),
            ") per index (", indices->dim_size(0), " indices)"));
      }
    } else if (grad->shape() != var.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grad has shape ", grad->shape().DebugString(), " but var has shape ",
          var.shape().DebugString(), "; they must match"));
    }
    u->format = layout_.format;
    u->var = const_cast<float*>(var.flat<float>().data());
    u->grad = grad->flat<float>().data();
    u->centered = layout_.centered;
    u->momentum = layout_.momentum;
    u->layout = blocks;
    return absl::OkStatus();
  }

  bool use_locking_;
  bool epsilon_after_sqrt_;
  CompactLayout layout_;
};

// FusedResourceApplyCompactRMSProp and FusedResourceApplyCenteredCompactRMSProp,
// with the grouped op's extras for their one variable.
template <typename Device, bool kCentered>
class DenseApplyCompactRMSPropOp : public CompactApplyOpBase<Device, kCentered> {
 public:
  explicit DenseApplyCompactRMSPropOp(tensorflow::OpKernelConstruction* ctx)
      : CompactApplyOpBase<Device, kCentered>(ctx) {
    int num_ema;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_ema_slots", &num_ema));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("apply_weight_decay", &apply_weight_decay_));
    OP_REQUIRES(ctx, num_ema <= 1,
                absl::InvalidArgumentError(absl::StrCat(
                    "ema must be empty or one EMA slot (of var), got ", num_ema)));
    this->layout_.ema = num_ema == 1;
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    rmsprop_math::Extras<float> x;
    std::vector<double> clip_divisors;
    bool has_extras;
    OP_REQUIRES_OK(ctx, ReadExtras<float>(ctx, /*num_vars=*/1, apply_weight_decay_,
                                          this->layout_.ema, &x, &clip_divisors, &has_extras));
    if (!clip_divisors.empty()) x.clip_divisor = static_cast<float>(clip_divisors[0]);
    rmsprop_math::Hyper<float> h;
    LockedVariables<Device> vars;
    CompactUpdate u;
    OP_REQUIRES_OK(ctx, this->Prepare(ctx, /*sparse=*/false, &h, &vars, &u));
    if (u.layout.num_blocks() == 0) return;
    const DeviceStatus status = functor::DenseApplyCompactRMSProp<Device>()(
        ctx->eigen_device<Device>(), u, h, has_extras ? &x : nullptr);
    OP_REQUIRES(ctx, status.ok(), DeviceError(status));
  }

 private:
  bool apply_weight_decay_;
};

// FusedResourceSparseApplyCompactRMSProp and
// FusedResourceSparseApplyCenteredCompactRMSProp (CPU; the GPU's is
// GpuSparseApplyCompactRMSPropOp, cuda/gpu_kernels.cc).
template <typename Device, typename Tindex, bool kCentered>
class SparseApplyCompactRMSPropOp : public CompactApplyOpBase<Device, kCentered> {
 public:
  explicit SparseApplyCompactRMSPropOp(tensorflow::OpKernelConstruction* ctx)
      : CompactApplyOpBase<Device, kCentered>(ctx) {}

  void Compute(tensorflow::OpKernelContext* ctx) override {
    rmsprop_math::Hyper<float> h;
    LockedVariables<Device> vars;
    CompactUpdate u;
    OP_REQUIRES_OK(ctx, this->Prepare(ctx, /*sparse=*/true, &h, &vars, &u));
    const tensorflow::Tensor* indices;
    OP_REQUIRES_OK(ctx, ctx->input("indices", &indices));
    const int64_t bad = functor::SparseApplyCompactRMSProp<Device, Tindex>()(
        ctx->eigen_device<Device>(), u, indices->flat<Tindex>().data(),
        indices->NumElements(), h);
    OP_REQUIRES(ctx, bad < 0, BadIndexError(bad, u.layout.rows));
  }
};

}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_OP_KERNELS_H_
