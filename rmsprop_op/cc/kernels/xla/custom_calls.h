// The custom calls our XLA kernels emit and our FFI handlers serve: their
// names and the order of their operands, described once for both sides.
#ifndef RMSPROP_OP_CC_KERNELS_XLA_CUSTOM_CALLS_H_
#define RMSPROP_OP_CC_KERNELS_XLA_CUSTOM_CALLS_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "rmsprop_op/cc/kernels/common/op_inputs.h"

namespace rmsprop_op {
namespace xla_kernels {

// Dense updates (the single-variable ops and the grouped op). Operands: the
// variables (layout below), one grad per variable, the hyperparameters
// (RMSPROP_HYPERPARAMETERS), and for the grouped op the extras
// (RMSPROP_EXTRAS) and clip_divisors. Results: the variables, aliased.
constexpr char kApplyTarget[] = "rmsprop_op_apply";
// Sparse updates. Operands: the variables, grad, indices, the
// hyperparameters. Results: the variables, aliased.
constexpr char kSparseApplyTarget[] = "rmsprop_op_sparse_apply";
// Squared norms. Operands: the gradients, divisor. Result: float64[n].
constexpr char kSquaredNormsTarget[] = "rmsprop_op_squared_norms";

// An update's variables are its first operands and its results, in the
// order of the op kernels' VariableLayout (var, ms, mg, mom, ema, each a
// block of num_vars; `indexed` marks the grouped op, whose extras and
// clip_divisors follow the hyperparameters). The custom call's attributes
// carry it, with the op's attrs.
struct CallLayout : VariableLayout {
  bool epsilon_after_sqrt = false;
  bool apply_weight_decay = false;

  CallLayout() : VariableLayout{1, false, false, false} {}

  std::vector<std::pair<const char*, int64_t>> Attributes() const {
    return {{"num_vars", num_vars},
            {"centered", centered},
            {"momentum", momentum},
            {"ema", ema},
            {"grouped", indexed},
            {"epsilon_after_sqrt", epsilon_after_sqrt},
            {"apply_weight_decay", apply_weight_decay}};
  }
};

}  // namespace xla_kernels
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_XLA_CUSTOM_CALLS_H_
