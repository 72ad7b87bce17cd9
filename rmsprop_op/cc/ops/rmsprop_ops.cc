// Op registrations for the fused RMSProp updates.
//
// The ops mirror TensorFlow's ResourceApplyRMSProp family (resource handles
// in, nothing out, a use_locking attr) with two differences: the momentum
// slot is an optional list of zero or one handle, and the hyperparameters are
// float64 host scalars for every variable dtype, so that a float16 variable
// sees the same learning rate as a float32 one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "rmsprop_op/cc/kernels/common/dtypes.h"
#include "rmsprop_op/cc/kernels/common/hyperparameters.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace rmsprop_op {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// The shape a resource input's handle carries, or unknown.
ShapeHandle HandleShape(InferenceContext* c, int input) {
  const auto* handle_data = c->input_handle_shapes_and_types(input);
  if (handle_data == nullptr || handle_data->empty()) {
    return c->UnknownShape();
  }
  return (*handle_data)[0].shape;
}

// The number of resource inputs (var and its slots) of a single-variable op;
// they come first, then grad, [indices], and the four hyperparameters last.
absl::Status NumVariableInputs(InferenceContext* c, bool centered, int* n) {
  int num_mom;
  TF_RETURN_IF_ERROR(c->GetAttr("num_momentum_slots", &num_mom));
  if (num_mom > 1) {
    return absl::InvalidArgumentError(
        "at most one momentum slot (mom) may be given");
  }
  *n = 2 + (centered ? 1 : 0) + num_mom;
  return absl::OkStatus();
}

// A shape error that names the input it is about: TensorFlow's own
// message (e.g. "Dimensions must be equal") names only the shapes, and inside
// a tf.function this is the error the user sees, before any kernel runs.
absl::Status About(absl::Status status, absl::string_view what) {
  if (status.ok()) return status;
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", status.message()));
}

// The resource inputs of a single-variable op, in order.
const char* VariableInputName(bool centered, int i) {
  static const char* const kPlain[] = {"var", "ms", "mom"};
  static const char* const kCentered[] = {"var", "mg", "ms", "mom"};
  return centered ? kCentered[i] : kPlain[i];
}

// Merges the shapes of the variable and all its slots; they must agree.
absl::Status MergeSlotShapes(InferenceContext* c, bool centered, int num_variable_inputs,
                             ShapeHandle* var_shape) {
  *var_shape = HandleShape(c, 0);
  for (int i = 1; i < num_variable_inputs; ++i) {
    TF_RETURN_IF_ERROR(About(c->Merge(*var_shape, HandleShape(c, i), var_shape),
                             absl::StrCat(VariableInputName(centered, i),
                                          " must have the shape of var")));
  }
  return absl::OkStatus();
}

// The scalar inputs named in `names` must be scalars.
absl::Status Scalars(InferenceContext* c, const std::vector<const char*>& names) {
  for (const char* name : names) {
    std::vector<ShapeHandle> shapes;
    TF_RETURN_IF_ERROR(c->input(name, &shapes));
    ShapeHandle unused;
    TF_RETURN_IF_ERROR(About(c->WithRank(shapes[0], 0, &unused),
                             absl::StrCat(name, " must be a scalar")));
  }
  return absl::OkStatus();
}

#define RMSPROP_NAME(name, ...) #name,
const std::vector<const char*> kHyperparameters = {RMSPROP_HYPERPARAMETERS(RMSPROP_NAME)};
const std::vector<const char*> kExtras = {RMSPROP_EXTRAS(RMSPROP_NAME)};
#undef RMSPROP_NAME

// The shape of the one input `name` (grad, indices, clip_divisors).
absl::Status Input(InferenceContext* c, const char* name, ShapeHandle* shape) {
  std::vector<ShapeHandle> shapes;
  TF_RETURN_IF_ERROR(c->input(name, &shapes));
  *shape = shapes[0];
  return absl::OkStatus();
}

// The hyperparameters and the extras (the grouped op's and the dense
// compact ops'): scalars, and clip_divisors a vector.
absl::Status ScalarsAndExtras(InferenceContext* c) {
  TF_RETURN_IF_ERROR(Scalars(c, kHyperparameters));
  TF_RETURN_IF_ERROR(Scalars(c, kExtras));
  ShapeHandle clip_divisors;
  TF_RETURN_IF_ERROR(Input(c, "clip_divisors", &clip_divisors));
  return About(c->WithRank(clip_divisors, 1, &clip_divisors),
               "clip_divisors must be a vector");
}

template <bool kCentered>
absl::Status DenseShapeFn(InferenceContext* c) {
  int n = 0;
  TF_RETURN_IF_ERROR(NumVariableInputs(c, kCentered, &n));
  ShapeHandle var_shape;
  TF_RETURN_IF_ERROR(MergeSlotShapes(c, kCentered, n, &var_shape));
  ShapeHandle grad;
  TF_RETURN_IF_ERROR(Input(c, "grad", &grad));
  TF_RETURN_IF_ERROR(About(c->Merge(var_shape, grad, &var_shape),
                           "grad must have the shape of var"));
  return Scalars(c, kHyperparameters);
}

absl::Status SparseGradShape(InferenceContext* c, ShapeHandle var_shape);

template <bool kCentered>
absl::Status SparseShapeFn(InferenceContext* c) {
  int n = 0;
  TF_RETURN_IF_ERROR(NumVariableInputs(c, kCentered, &n));
  ShapeHandle var_shape;
  TF_RETURN_IF_ERROR(MergeSlotShapes(c, kCentered, n, &var_shape));
  TF_RETURN_IF_ERROR(SparseGradShape(c, var_shape));
  return Scalars(c, kHyperparameters);
}

// grad is [len(indices)] + var.shape[1:].
absl::Status SparseGradShape(InferenceContext* c, ShapeHandle var_shape) {
  ShapeHandle grad, indices;
  TF_RETURN_IF_ERROR(Input(c, "grad", &grad));
  TF_RETURN_IF_ERROR(Input(c, "indices", &indices));
  TF_RETURN_IF_ERROR(About(c->WithRank(indices, 1, &indices),
                           "indices must be a vector"));
  TF_RETURN_IF_ERROR(About(c->WithRankAtLeast(grad, 1, &grad),
                           "grad must have at least one dimension (the rows of indices)"));
  DimensionHandle unused_dim;
  TF_RETURN_IF_ERROR(About(c->Merge(c->Dim(grad, 0), c->Dim(indices, 0), &unused_dim),
                           "grad must have one row per element of indices"));
  if (c->RankKnown(var_shape)) {
    TF_RETURN_IF_ERROR(About(c->WithRankAtLeast(var_shape, 1, &var_shape),
                             "var must have at least one dimension for a sparse update"));
    ShapeHandle var_row, grad_row, merged;
    TF_RETURN_IF_ERROR(c->Subshape(var_shape, 1, &var_row));
    TF_RETURN_IF_ERROR(c->Subshape(grad, 1, &grad_row));
    TF_RETURN_IF_ERROR(About(c->Merge(var_row, grad_row, &merged),
                             "grad's rows must have the shape of var's rows"));
  }
  return absl::OkStatus();
}

// Every variable and slot of the grouped op has the shape of its gradient.
// The resource inputs come first, in the blocks below (the registration's
// order), each one per variable or empty.
absl::Status GroupShapeFn(InferenceContext* c) {
  int n, num_mg, num_mom, num_ema;
  TF_RETURN_IF_ERROR(c->GetAttr("num_vars", &n));
  TF_RETURN_IF_ERROR(c->GetAttr("num_mg_slots", &num_mg));
  TF_RETURN_IF_ERROR(c->GetAttr("num_momentum_slots", &num_mom));
  TF_RETURN_IF_ERROR(c->GetAttr("num_ema_slots", &num_ema));
  if ((num_mom != 0 && num_mom != n) || (num_mg != 0 && num_mg != n) ||
      (num_ema != 0 && num_ema != n)) {
    return absl::InvalidArgumentError(
        "mom, mg and ema must be empty or have one slot per variable");
  }
  const std::pair<const char*, int> blocks[] = {
      {"var", n}, {"mg", num_mg}, {"ms", n}, {"mom", num_mom}, {"ema", num_ema}};
  std::vector<ShapeHandle> grads;
  TF_RETURN_IF_ERROR(c->input("grad", &grads));
  int r = 0;
  for (const auto& [name, size] : blocks) {
    for (int i = 0; i < size; ++i, ++r) {
      ShapeHandle merged;
      const bool is_var = absl::string_view(name) == "var";
      TF_RETURN_IF_ERROR(About(
          c->Merge(HandleShape(c, r), grads[i], &merged),
          is_var ? absl::StrCat("grad[", i, "] must have the shape of var[", i, "]")
                 : absl::StrCat(name, "[", i, "] must have the shape of var[", i, "] and grad[",
                                i, "]")));
    }
  }
  return ScalarsAndExtras(c);
}

// The ops with compact state: var, [mg], ms, [mom], each slot as
// num_state_vars resources (int8: codes of var's shape, then scales of
// compact_state.scales_shape(var's shape); bfloat16: one of var's shape).
template <bool kCentered, bool kSparse>
absl::Status CompactShapeFn(InferenceContext* c) {
  std::string format;
  int per_slot, num_mom;
  TF_RETURN_IF_ERROR(c->GetAttr("state_format", &format));
  TF_RETURN_IF_ERROR(c->GetAttr("num_state_vars", &per_slot));
  TF_RETURN_IF_ERROR(c->GetAttr("num_momentum_vars", &num_mom));
  const bool int8 = format == "int8";
  if (per_slot != (int8 ? 2 : 1) || (num_mom != 0 && num_mom != per_slot)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "state_format ", format, " keeps each slot in ", int8 ? 2 : 1,
        " variable(s): num_state_vars must be that and num_momentum_vars 0 or that, got ",
        per_slot, " and ", num_mom));
  }
  ShapeHandle var_shape = HandleShape(c, 0);
  std::vector<const char*> slots = {"ms"};
  if (kCentered) slots.insert(slots.begin(), "mg");
  if (num_mom > 0) slots.push_back("mom");
  ShapeHandle scales_shape = c->Matrix(c->UnknownDim(), c->UnknownDim());
  int input = 1;
  for (const char* slot : slots) {
    TF_RETURN_IF_ERROR(About(c->Merge(var_shape, HandleShape(c, input), &var_shape),
                             absl::StrCat(slot, int8 ? " codes" : "",
                                          " must have the shape of var")));
    if (int8) {
      TF_RETURN_IF_ERROR(About(c->Merge(scales_shape, HandleShape(c, input + 1), &scales_shape),
                               absl::StrCat(slot, " scales must be a matrix, one scale per block, "
                                            "and every slot's scales alike")));
    }
    input += per_slot;
  }
  if (int8 && c->FullyDefined(var_shape)) {
    // compact_state.scales_shape.
    const int rank = c->Rank(var_shape);
    int64_t rows = rank > 0 ? c->Value(c->Dim(var_shape, 0)) : 1;
    int64_t columns = 1;
    for (int d = 1; d < rank; ++d) columns *= c->Value(c->Dim(var_shape, d));
    const int64_t rows_per_block = std::max<int64_t>(1, 256 / std::max<int64_t>(columns, 1));
    const int64_t columns_per_block = std::min<int64_t>(columns, 256);
    const ShapeHandle expected = c->Matrix(
        (rows + rows_per_block - 1) / rows_per_block,
        columns_per_block > 0 ? (columns + columns_per_block - 1) / columns_per_block : 0);
    TF_RETURN_IF_ERROR(About(c->Merge(scales_shape, expected, &scales_shape),
                             "scales must have compact_state.scales_shape(var.shape)"));
  }
  if (kSparse) {
    TF_RETURN_IF_ERROR(SparseGradShape(c, var_shape));
    return Scalars(c, kHyperparameters);
  }
  int num_ema;
  TF_RETURN_IF_ERROR(c->GetAttr("num_ema_slots", &num_ema));
  if (num_ema > 1) {
    return absl::InvalidArgumentError("ema must be empty or one EMA slot (of var)");
  }
  if (num_ema == 1) {
    TF_RETURN_IF_ERROR(About(c->Merge(var_shape, HandleShape(c, input), &var_shape),
                             "ema must have the shape of var"));
  }
  ShapeHandle grad;
  TF_RETURN_IF_ERROR(Input(c, "grad", &grad));
  TF_RETURN_IF_ERROR(About(c->Merge(var_shape, grad, &var_shape),
                           "grad must have the shape of var"));
  return ScalarsAndExtras(c);
}

// The `T` attr: every dtype of dtypes.h, or its real ones.
std::string TypeAttr(bool real_only) {
  std::vector<std::string> names;
#define RMSPROP_DTYPE_NAME(M, type, name, kind) \
  if (!real_only || absl::string_view(#kind) == "REAL") names.push_back(#name);
  RMSPROP_DTYPES(RMSPROP_DTYPE_NAME, )
#undef RMSPROP_DTYPE_NAME
  return absl::StrCat("T: {", absl::StrJoin(names, ", "), "}");
}

}  // namespace

#define RMSPROP_SCALAR_INPUT(name, ...) .Input(#name ": double")
#define RMSPROP_HYPERPARAMETER_INPUTS RMSPROP_HYPERPARAMETERS(RMSPROP_SCALAR_INPUT)

REGISTER_OP("FusedResourceApplyRMSProp")
    .Input("var: resource")
    .Input("ms: resource")
    .Input("mom: num_momentum_slots * resource")
    .Input("grad: T")
    RMSPROP_HYPERPARAMETER_INPUTS
    .Attr(TypeAttr(/*real_only=*/false))
    .Attr("num_momentum_slots: int >= 0")
    .Attr("use_locking: bool = false")
    .Attr("epsilon_after_sqrt: bool = false")
    .SetShapeFn(DenseShapeFn<false>)
    .Doc(R"doc(
In-place RMSProp update of a resource variable, one fused pass.

ms <- rho * ms + (1 - rho) * grad^2
step <- lr * grad / sqrt(ms + epsilon)
  (with epsilon_after_sqrt: lr * grad / (sqrt(ms) + epsilon), as tf_keras's
  RMSprop computes it without momentum)
with a momentum slot: mom <- momentum * mom + step; var <- var - mom
without one (momentum must be 0): var <- var - step
)doc");

REGISTER_OP("FusedResourceApplyCenteredRMSProp")
    .Input("var: resource")
    .Input("mg: resource")
    .Input("ms: resource")
    .Input("mom: num_momentum_slots * resource")
    .Input("grad: T")
    RMSPROP_HYPERPARAMETER_INPUTS
    .Attr(TypeAttr(/*real_only=*/false))
    .Attr("num_momentum_slots: int >= 0")
    .Attr("use_locking: bool = false")
    .Attr("epsilon_after_sqrt: bool = false")
    .SetShapeFn(DenseShapeFn<true>)
    .Doc(R"doc(
In-place centered RMSProp update: as FusedResourceApplyRMSProp with
mg <- rho * mg + (1 - rho) * grad and step <- lr * grad / sqrt(ms - mg^2 + epsilon).
)doc");

REGISTER_OP("FusedResourceSparseApplyRMSProp")
    .Input("var: resource")
    .Input("ms: resource")
    .Input("mom: num_momentum_slots * resource")
    .Input("grad: T")
    .Input("indices: Tindices")
    RMSPROP_HYPERPARAMETER_INPUTS
    .Attr(TypeAttr(/*real_only=*/false))
    .Attr("Tindices: {int32, int64}")
    .Attr("num_momentum_slots: int >= 0")
    .Attr("use_locking: bool = false")
    .Attr("epsilon_after_sqrt: bool = false")
    .SetShapeFn(SparseShapeFn<false>)
    .Doc(R"doc(
Row-wise RMSProp update of the rows of var (and its slots) named by indices.
Duplicate indices are summed first; rows not named are left untouched.
)doc");

REGISTER_OP("FusedResourceSparseApplyCenteredRMSProp")
    .Input("var: resource")
    .Input("mg: resource")
    .Input("ms: resource")
    .Input("mom: num_momentum_slots * resource")
    .Input("grad: T")
    .Input("indices: Tindices")
    RMSPROP_HYPERPARAMETER_INPUTS
    .Attr(TypeAttr(/*real_only=*/false))
    .Attr("Tindices: {int32, int64}")
    .Attr("num_momentum_slots: int >= 0")
    .Attr("use_locking: bool = false")
    .Attr("epsilon_after_sqrt: bool = false")
    .SetShapeFn(SparseShapeFn<true>)
    .Doc(R"doc(
Row-wise centered RMSProp update; see FusedResourceSparseApplyRMSProp.
)doc");

REGISTER_OP("FusedResourceGroupApplyRMSProp")
    .Input("var: num_vars * resource")
    .Input("mg: num_mg_slots * resource")
    .Input("ms: num_vars * resource")
    .Input("mom: num_momentum_slots * resource")
    .Input("ema: num_ema_slots * resource")
    .Input("grad: num_vars * T")
    RMSPROP_HYPERPARAMETER_INPUTS
    .Input("clip_divisors: double")
    RMSPROP_EXTRAS(RMSPROP_SCALAR_INPUT)
    .Attr(TypeAttr(/*real_only=*/false))
    .Attr("num_vars: int >= 1")
    .Attr("num_mg_slots: int >= 0")
    .Attr("num_momentum_slots: int >= 0")
    .Attr("num_ema_slots: int >= 0 = 0")
    .Attr("apply_weight_decay: bool = false")
    .Attr("use_locking: bool = false")
    .Attr("epsilon_after_sqrt: bool = false")
    .SetShapeFn(GroupShapeFn)
    .Doc(R"doc(
Dense RMSProp update of a list of variables with shared hyperparameters in
one op. mg is empty (plain) or one slot per variable (centered); mom is empty
(momentum must be 0) or one slot per variable.

Keras's steps around the update run in the same pass, in Keras's order
(real dtypes, CPU and GPU):
  g <- clip(((g / grad_divisor) * clip_multiplier) / clip_divisors[i],
            -clip_value, clip_value)
  var <- var - var * weight_decay * lr        (with apply_weight_decay)
  the update
  ema <- ema_momentum * ema + (1 - ema_momentum) * var   (with ema slots)
grad_divisor is Keras's loss_scale_factor, clip_multiplier clipnorm or
global_clipnorm's scale, clip_divisors empty or max(norm_i, clipnorm) per
variable, clip_value clipvalue; 1, 1, empty and +inf leave the gradient as is.
)doc");

// The compact state ops' attrs: the format of the slots and how many
// resources each slot is (int8: 2, codes and scales; bfloat16: 1).
#define RMSPROP_COMPACT_ATTRS                                 \
  .Attr("state_format: {'int8', 'bfloat16'}")                 \
  .Attr("num_state_vars: int >= 1")                           \
  .Attr("num_momentum_vars: int >= 0")                        \
  .Attr("use_locking: bool = false")                          \
  .Attr("epsilon_after_sqrt: bool = false")

// The dense compact ops' extras: the grouped op's, for one variable (its EMA
// slot, a float32 variable, and clip_divisors of 0 or 1 value).
#define RMSPROP_COMPACT_EXTRAS                                \
  .Input("clip_divisors: double")                             \
  RMSPROP_EXTRAS(RMSPROP_SCALAR_INPUT)                        \
  .Attr("num_ema_slots: int >= 0 = 0")                        \
  .Attr("apply_weight_decay: bool = false")

REGISTER_OP("FusedResourceApplyCompactRMSProp")
    .Input("var: resource")
    .Input("ms: num_state_vars * resource")
    .Input("mom: num_momentum_vars * resource")
    .Input("ema: num_ema_slots * resource")
    .Input("grad: float")
    RMSPROP_HYPERPARAMETER_INPUTS
    RMSPROP_COMPACT_EXTRAS
    RMSPROP_COMPACT_ATTRS
    .SetShapeFn(CompactShapeFn</*kCentered=*/false, /*kSparse=*/false>)
    .Doc(R"doc(
FusedResourceApplyRMSProp of a float32 variable whose slots are kept in a
compact format (rmsprop_op/compact_state.py): state_format 'bfloat16' (each
slot one bfloat16 variable, rounded to nearest even) or 'int8' (each slot its
codes, uint8 for ms and int8 for mom, and its float32 block scales). Each
block is decoded, updated in float32 and encoded again in one pass.

Keras's steps around the update run in the same pass, as in
FusedResourceGroupApplyRMSProp for one variable: ema is empty or its one EMA
slot (float32, var's shape), clip_divisors empty or its one divisor.
)doc");

REGISTER_OP("FusedResourceApplyCenteredCompactRMSProp")
    .Input("var: resource")
    .Input("mg: num_state_vars * resource")
    .Input("ms: num_state_vars * resource")
    .Input("mom: num_momentum_vars * resource")
    .Input("ema: num_ema_slots * resource")
    .Input("grad: float")
    RMSPROP_HYPERPARAMETER_INPUTS
    RMSPROP_COMPACT_EXTRAS
    RMSPROP_COMPACT_ATTRS
    .SetShapeFn(CompactShapeFn</*kCentered=*/true, /*kSparse=*/false>)
    .Doc(R"doc(
FusedResourceApplyCenteredRMSProp with compact slots; see
FusedResourceApplyCompactRMSProp (mg's int8 codes are signed).
)doc");

REGISTER_OP("FusedResourceSparseApplyCompactRMSProp")
    .Input("var: resource")
    .Input("ms: num_state_vars * resource")
    .Input("mom: num_momentum_vars * resource")
    .Input("grad: float")
    .Input("indices: Tindices")
    RMSPROP_HYPERPARAMETER_INPUTS
    .Attr("Tindices: {int32, int64}")
    RMSPROP_COMPACT_ATTRS
    .SetShapeFn(CompactShapeFn</*kCentered=*/false, /*kSparse=*/true>)
    .Doc(R"doc(
FusedResourceSparseApplyRMSProp with compact slots: only the blocks that
hold a named row are decoded and encoded again; the others are not touched.
)doc");

REGISTER_OP("FusedResourceSparseApplyCenteredCompactRMSProp")
    .Input("var: resource")
    .Input("mg: num_state_vars * resource")
    .Input("ms: num_state_vars * resource")
    .Input("mom: num_momentum_vars * resource")
    .Input("grad: float")
    .Input("indices: Tindices")
    RMSPROP_HYPERPARAMETER_INPUTS
    .Attr("Tindices: {int32, int64}")
    RMSPROP_COMPACT_ATTRS
    .SetShapeFn(CompactShapeFn</*kCentered=*/true, /*kSparse=*/true>)
    .Doc(R"doc(
FusedResourceSparseApplyCenteredRMSProp with compact slots; see
FusedResourceSparseApplyCompactRMSProp.
)doc");

REGISTER_OP("FusedGradientSquaredNorms")
    .Input("grad: N * T")
    .Input("divisor: double")
    .Output("squared_norms: double")
    .Attr(TypeAttr(/*real_only=*/true))
    .Attr("N: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(Scalars(c, {"divisor"}));
      c->set_output(0, c->Vector(n));
      return absl::OkStatus();
    })
    .Doc(R"doc(
The sum of squares of each gradient, every element divided by divisor first
(Keras's loss-scale unscaling), accumulated in double in a fixed order: one
read of every gradient for clipnorm and global_clipnorm.
)doc");

}  // namespace rmsprop_op

// Read back (as bytes of the file, without loading it) by rmsprop_op/_loader.py
// to tell a library built against another TensorFlow from a current one.
extern "C" __attribute__((visibility("default"), used)) const char
    rmsprop_op_build_stamp[] =
        "rmsprop_op built against TensorFlow " RMSPROP_OP_TF_VERSION ";";
