// The custom calls our XLA kernels emit and our FFI handlers serve: their
// names and the order of their operands, described once for both sides.
#ifndef RMSPROP_OP_CC_KERNELS_XLA_CUSTOM_CALLS_H_
#define RMSPROP_OP_CC_KERNELS_XLA_CUSTOM_CALLS_H_

#include <cstdint>
#include <utility>
#include <vector>

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

// Which variables an update has, and where each sits among the first
// operands: num_vars variables, then one block of num_vars per slot, in the
// order var, ms, mg, mom, ema (mg, mom and ema only when present). The
// attributes of the update's custom call carry it.
struct CallLayout {
  int64_t num_vars = 1;
  bool centered = false;
  bool momentum = false;
  bool ema = false;
  bool grouped = false;  // the grouped op: extras and clip_divisors follow
  bool epsilon_after_sqrt = false;
  bool apply_weight_decay = false;

  int var(int i) const { return i; }
  int ms(int i) const { return num_vars + i; }
  int mg(int i) const { return centered ? 2 * num_vars + i : -1; }
  int mom(int i) const { return momentum ? (centered ? 3 : 2) * num_vars + i : -1; }
  int ema_slot(int i) const { return ema ? (2 + centered + momentum) * num_vars + i : -1; }
  int num_variables() const { return (2 + centered + momentum + ema) * num_vars; }

  std::vector<std::pair<const char*, int64_t>> Attributes() const {
    return {{"num_vars", num_vars},
            {"centered", centered},
            {"momentum", momentum},
            {"ema", ema},
            {"grouped", grouped},
            {"epsilon_after_sqrt", epsilon_after_sqrt},
            {"apply_weight_decay", apply_weight_decay}};
  }
};

}  // namespace xla_kernels
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_XLA_CUSTOM_CALLS_H_
