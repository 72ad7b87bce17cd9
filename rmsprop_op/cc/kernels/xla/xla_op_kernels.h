// The XLA kernels of the fused RMSProp ops. Each reads the variables, emits
// one custom call (XLA's typed FFI) into our own functors, with every result
// aliased to its variable's buffer, and assigns the results back. Shapes and
// dtypes are checked here, when XLA compiles; values (hyperparameters,
// indices) by the custom call's handler (ffi_handlers.h), before any write.
#ifndef RMSPROP_OP_CC_KERNELS_XLA_XLA_OP_KERNELS_H_
#define RMSPROP_OP_CC_KERNELS_XLA_XLA_OP_KERNELS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rmsprop_op/cc/kernels/common/hyperparameters.h"
#include "rmsprop_op/cc/kernels/xla/custom_calls.h"
#include "tensorflow/compiler/tf2xla/xla_op_kernel.h"
#include "tensorflow/compiler/tf2xla/xla_op_registry.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "xla/hlo/builder/xla_builder.h"
#include "xla/shape_util.h"

namespace rmsprop_op {
namespace xla_kernels {

using tensorflow::XlaOpKernel;
using XlaOpKernelConstruction = tensorflow::OpKernelConstruction;
using tensorflow::XlaOpKernelContext;

// The operands of one custom call: first the variables, each aliased to the
// result of the same position, then the other inputs.
class CallBuilder {
 public:
  CallBuilder(XlaOpKernelContext* ctx, tensorflow::DataType dtype)
      : ctx_(ctx), dtype_(dtype) {}

  // The resource inputs `name` (one, or a list), in order.
  absl::Status AddVariables(const char* name, bool indexed) {
    int start, stop;
    TF_RETURN_IF_ERROR(ctx_->op_kernel().InputRange(name, &start, &stop));
    for (int i = start; i < stop; ++i) {
      tensorflow::TensorShape shape;
      xla::XlaOp value;
      TF_RETURN_IF_ERROR(ctx_->ReadVariableInput(i, dtype_, &shape, &value));
      variable_inputs_.push_back(i);
      variable_shapes_.push_back(shape);
      variable_names_.push_back(indexed ? absl::StrCat(name, "[", i - start, "]") : name);
      operands_.push_back(value);
    }
    return absl::OkStatus();
  }

  const tensorflow::TensorShape& shape(int variable) const {
    return variable_shapes_[variable];
  }
  const std::string& name(int variable) const { return variable_names_[variable]; }
  int num_variables() const { return static_cast<int>(variable_inputs_.size()); }

  // Every slot of variable i (slots: their positions) has its shape.
  absl::Status CheckSlotShapes(int var, std::initializer_list<int> slots) const {
    for (int pos : slots) {
      if (pos < 0 || shape(pos) == shape(var)) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          name(pos), " has shape ", shape(pos).DebugString(), " but ", name(var),
          " has shape ", shape(var).DebugString(),
          "; a slot must have the shape of its variable"));
    }
    return absl::OkStatus();
  }

  void Add(xla::XlaOp operand) { operands_.push_back(operand); }

  // The float64 scalar input `name`.
  absl::Status AddScalar(const char* name) {
    const tensorflow::TensorShape shape = ctx_->InputShape(name);
    if (!tensorflow::TensorShapeUtils::IsScalar(shape)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " must be a scalar, got shape ", shape.DebugString()));
    }
    operands_.push_back(ctx_->Input(name));
    return absl::OkStatus();
  }

  absl::Status AddHyperparameters() {
#define RMSPROP_ADD(name, ...) TF_RETURN_IF_ERROR(AddScalar(#name));
    RMSPROP_HYPERPARAMETERS(RMSPROP_ADD)
#undef RMSPROP_ADD
    return absl::OkStatus();
  }

  absl::Status AddExtras() {
#define RMSPROP_ADD(name, ...) TF_RETURN_IF_ERROR(AddScalar(#name));
    RMSPROP_EXTRAS(RMSPROP_ADD)
#undef RMSPROP_ADD
    return absl::OkStatus();
  }

  // Emits the custom call `target` with attributes `attrs` ("name = value"
  // pairs) and assigns each variable its result.
  absl::Status EmitUpdate(const char* target,
                          const std::vector<std::pair<const char*, int64_t>>& attrs) {
    xla::XlaBuilder* b = ctx_->builder();
    std::vector<xla::Shape> shapes;
    std::vector<std::pair<xla::ShapeIndex, std::pair<int64_t, xla::ShapeIndex>>> aliasing;
    for (int k = 0; k < num_variables(); ++k) {
      TF_ASSIGN_OR_RETURN(xla::Shape shape, b->GetShape(operands_[k]));
      shapes.push_back(shape);
      aliasing.push_back({xla::ShapeIndex{k}, {k, xla::ShapeIndex{}}});
    }
    const xla::XlaOp call = xla::CustomCall(
        b, target, operands_, xla::ShapeUtil::MakeTupleShape(shapes),
        BackendConfig(attrs), /*has_side_effect=*/false, aliasing,
        /*literal=*/nullptr, xla::CustomCallSchedule::SCHEDULE_NONE,
        xla::CustomCallApiVersion::API_VERSION_TYPED_FFI);
    for (int k = 0; k < num_variables(); ++k) {
      TF_RETURN_IF_ERROR(ctx_->AssignVariable(variable_inputs_[k], dtype_,
                                              xla::GetTupleElement(call, k)));
    }
    return absl::OkStatus();
  }

  const std::vector<xla::XlaOp>& operands() const { return operands_; }

  // The typed FFI reads a custom call's attributes from its backend config,
  // an MLIR dictionary.
  static std::string BackendConfig(
      const std::vector<std::pair<const char*, int64_t>>& attrs) {
    std::string config = "{";
    for (const auto& [name, value] : attrs) {
      absl::StrAppend(&config, config.size() > 1 ? ", " : "", name, " = ", value, " : i64");
    }
    return config + "}";
  }

 private:
  XlaOpKernelContext* ctx_;
  tensorflow::DataType dtype_;
  std::vector<int> variable_inputs_;
  std::vector<tensorflow::TensorShape> variable_shapes_;
  std::vector<std::string> variable_names_;
  std::vector<xla::XlaOp> operands_;
};

// The variables of an update in the custom calls' order (custom_calls.h):
// var, ms, mg, mom, ema, each a block of num_vars.
inline absl::Status AddUpdateVariables(CallBuilder* call, const CallLayout& layout) {
  const bool indexed = layout.indexed;
  TF_RETURN_IF_ERROR(call->AddVariables("var", indexed));
  TF_RETURN_IF_ERROR(call->AddVariables("ms", indexed));
  if (layout.centered) TF_RETURN_IF_ERROR(call->AddVariables("mg", indexed));
  if (layout.momentum) TF_RETURN_IF_ERROR(call->AddVariables("mom", indexed));
  if (layout.ema) TF_RETURN_IF_ERROR(call->AddVariables("ema", indexed));
  for (int i = 0; i < layout.num_vars; ++i) {
    TF_RETURN_IF_ERROR(call->CheckSlotShapes(
        layout.var(i), {layout.ms(i), layout.mg(i), layout.mom(i), layout.ema_slot(i)}));
  }
  return absl::OkStatus();
}

inline absl::Status GradShapeError(const std::string& grad, const tensorflow::TensorShape& got,
                                   const std::string& var,
                                   const tensorflow::TensorShape& want) {
  return absl::InvalidArgumentError(absl::StrCat(
      grad, " has shape ", got.DebugString(), " but ", var, " has shape ",
      want.DebugString(), "; they must match"));
}

// FusedResourceApplyRMSProp, FusedResourceApplyCenteredRMSProp and
// FusedResourceGroupApplyRMSProp: one dense custom call.
template <bool kCentered, bool kGrouped>
class DenseApplyXlaOp : public XlaOpKernel {
 public:
  explicit DenseApplyXlaOp(XlaOpKernelConstruction* ctx) : XlaOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("T", &dtype_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_after_sqrt", &layout_.epsilon_after_sqrt));
    int num_mom, num_mg = kCentered, num_ema = 0, num_vars = 1;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_momentum_slots", &num_mom));
    if (kGrouped) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr("num_vars", &num_vars));
      OP_REQUIRES_OK(ctx, ctx->GetAttr("num_mg_slots", &num_mg));
      OP_REQUIRES_OK(ctx, ctx->GetAttr("num_ema_slots", &num_ema));
      OP_REQUIRES_OK(ctx, ctx->GetAttr("apply_weight_decay", &layout_.apply_weight_decay));
    }
    OP_REQUIRES(ctx,
                (num_mom == 0 || num_mom == num_vars) && (num_mg == 0 || num_mg == num_vars) &&
                    (num_ema == 0 || num_ema == num_vars),
                absl::InvalidArgumentError(
                    "mom, mg and ema must be empty or have one slot per variable"));
    layout_.num_vars = num_vars;
    layout_.centered = num_mg > 0;
    layout_.momentum = num_mom > 0;
    layout_.ema = num_ema > 0;
    layout_.indexed = kGrouped;
  }

  void Compile(XlaOpKernelContext* ctx) override {
    CallBuilder call(ctx, dtype_);
    OP_REQUIRES_OK(ctx, AddUpdateVariables(&call, layout_));
    std::vector<xla::XlaOp> grads;
    std::vector<tensorflow::TensorShape> grad_shapes;
    if (kGrouped) {
      OP_REQUIRES_OK(ctx, ctx->InputList("grad", &grads, &grad_shapes));
    } else {
      grads = {ctx->Input("grad")};
      grad_shapes = {ctx->InputShape("grad")};
    }
    for (int i = 0; i < layout_.num_vars; ++i) {
      if (grad_shapes[i] != call.shape(i)) {
        ctx->CtxFailure(GradShapeError(kGrouped ? absl::StrCat("grad[", i, "]") : "grad",
                                       grad_shapes[i], call.name(i), call.shape(i)));
        return;
      }
      call.Add(grads[i]);
    }
    OP_REQUIRES_OK(ctx, call.AddHyperparameters());
    if (kGrouped) {
      OP_REQUIRES_OK(ctx, call.AddExtras());
      const tensorflow::TensorShape divisors = ctx->InputShape("clip_divisors");
      OP_REQUIRES(ctx,
                  tensorflow::TensorShapeUtils::IsVector(divisors) &&
                      (divisors.dim_size(0) == 0 || divisors.dim_size(0) == layout_.num_vars),
                  absl::InvalidArgumentError(absl::StrCat(
                      "clip_divisors must be a vector of 0 or ", layout_.num_vars,
                      " values (one per variable), got shape ", divisors.DebugString())));
      call.Add(ctx->Input("clip_divisors"));
    }
    OP_REQUIRES_OK(ctx, call.EmitUpdate(kApplyTarget, layout_.Attributes()));
  }

 private:
  tensorflow::DataType dtype_;
  CallLayout layout_;
};

// FusedResourceSparseApplyRMSProp and FusedResourceSparseApplyCenteredRMSProp.
template <bool kCentered>
class SparseApplyXlaOp : public XlaOpKernel {
 public:
  explicit SparseApplyXlaOp(XlaOpKernelConstruction* ctx) : XlaOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("T", &dtype_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon_after_sqrt", &layout_.epsilon_after_sqrt));
    int num_mom;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_momentum_slots", &num_mom));
    OP_REQUIRES(ctx, num_mom <= 1,
                absl::InvalidArgumentError("at most one momentum slot (mom) may be given"));
    layout_.centered = kCentered;
    layout_.momentum = num_mom == 1;
  }

  void Compile(XlaOpKernelContext* ctx) override {
    CallBuilder call(ctx, dtype_);
    OP_REQUIRES_OK(ctx, AddUpdateVariables(&call, layout_));
    const tensorflow::TensorShape grad = ctx->InputShape("grad");
    const tensorflow::TensorShape indices = ctx->InputShape("indices");
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsVector(indices),
                absl::InvalidArgumentError(absl::StrCat(
                    "indices must be a vector, got shape ", indices.DebugString())));
    const tensorflow::TensorShape& var = call.shape(0);
    OP_REQUIRES(ctx, var.dims() >= 1,
                absl::InvalidArgumentError(absl::StrCat(
                    "var must be at least 1-D for a sparse update, got shape ",
                    var.DebugString())));
    tensorflow::TensorShape expected = var;
    expected.set_dim(0, indices.dim_size(0));
    OP_REQUIRES(ctx, grad == expected,
                absl::InvalidArgumentError(absl::StrCat(
                    "grad has shape ", grad.DebugString(), " but must be ",
                    expected.DebugString(), ": one row of var (shape ", var.DebugString(),
                    ") per index (", indices.dim_size(0), " indices)")));
    call.Add(ctx->Input("grad"));
    call.Add(ctx->Input("indices"));
    OP_REQUIRES_OK(ctx, call.AddHyperparameters());
    OP_REQUIRES_OK(ctx, call.EmitUpdate(kSparseApplyTarget, layout_.Attributes()));
  }

 private:
  tensorflow::DataType dtype_;
  CallLayout layout_;
};

// FusedGradientSquaredNorms: a custom call with a result of its own.
class SquaredNormsXlaOp : public XlaOpKernel {
 public:
  explicit SquaredNormsXlaOp(XlaOpKernelConstruction* ctx) : XlaOpKernel(ctx) {}

  void Compile(XlaOpKernelContext* ctx) override {
    std::vector<xla::XlaOp> grads;
    std::vector<tensorflow::TensorShape> shapes;
    OP_REQUIRES_OK(ctx, ctx->InputList("grad", &grads, &shapes));
    const tensorflow::TensorShape divisor = ctx->InputShape("divisor");
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsScalar(divisor),
                absl::InvalidArgumentError(absl::StrCat(
                    "divisor must be a scalar, got shape ", divisor.DebugString())));
    xla::XlaBuilder* b = ctx->builder();
    const int64_t n = static_cast<int64_t>(grads.size());
    if (n == 0) {
      ctx->SetOutput(0, xla::ConstantR1<double>(b, absl::Span<const double>()));
      return;
    }
    std::vector<xla::XlaOp> operands = grads;
    operands.push_back(ctx->Input("divisor"));
    ctx->SetOutput(0, xla::CustomCall(b, kSquaredNormsTarget, operands,
                                      xla::ShapeUtil::MakeShape(xla::F64, {n}),
                                      CallBuilder::BackendConfig({}),
                                      /*has_side_effect=*/false, {}, nullptr,
                                      xla::CustomCallSchedule::SCHEDULE_NONE,
                                      xla::CustomCallApiVersion::API_VERSION_TYPED_FFI));
  }
};

using ApplyXlaOp = DenseApplyXlaOp<false, false>;
using CenteredApplyXlaOp = DenseApplyXlaOp<true, false>;
using GroupApplyXlaOp = DenseApplyXlaOp<false, true>;
using SparseXlaOp = SparseApplyXlaOp<false>;
using CenteredSparseXlaOp = SparseApplyXlaOp<true>;

}  // namespace xla_kernels
}  // namespace rmsprop_op

// Registers the XLA kernels of every op for one XLA device (DEVICE_CPU_XLA_JIT
// or DEVICE_GPU_XLA_JIT), where that device's handlers are registered too.
#define RMSPROP_REGISTER_XLA_KERNELS(JIT_DEVICE)                                  \
  REGISTER_XLA_OP(Name("FusedResourceApplyRMSProp").Device(JIT_DEVICE)            \
                      .AllowResourceTypes(),                                      \
                  ::rmsprop_op::xla_kernels::ApplyXlaOp);      \
  REGISTER_XLA_OP(Name("FusedResourceApplyCenteredRMSProp").Device(JIT_DEVICE)    \
                      .AllowResourceTypes(),                                      \
                  ::rmsprop_op::xla_kernels::CenteredApplyXlaOp);       \
  REGISTER_XLA_OP(Name("FusedResourceGroupApplyRMSProp").Device(JIT_DEVICE)       \
                      .AllowResourceTypes(),                                      \
                  ::rmsprop_op::xla_kernels::GroupApplyXlaOp);       \
  REGISTER_XLA_OP(Name("FusedResourceSparseApplyRMSProp").Device(JIT_DEVICE)      \
                      .AllowResourceTypes(),                                      \
                  ::rmsprop_op::xla_kernels::SparseXlaOp);            \
  REGISTER_XLA_OP(Name("FusedResourceSparseApplyCenteredRMSProp").Device(JIT_DEVICE) \
                      .AllowResourceTypes(),                                      \
                  ::rmsprop_op::xla_kernels::CenteredSparseXlaOp);             \
  REGISTER_XLA_OP(Name("FusedGradientSquaredNorms").Device(JIT_DEVICE),           \
                  ::rmsprop_op::xla_kernels::SquaredNormsXlaOp)

#endif  // RMSPROP_OP_CC_KERNELS_XLA_XLA_OP_KERNELS_H_
