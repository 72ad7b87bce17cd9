// Device functors of the fused RMSProp ops with compact state
// (compact_format.h), declared once for CPU and GPU.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FUNCTORS_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FUNCTORS_H_

#include <cstdint>

#include "rmsprop_op/cc/kernels/common/compact_format.h"
#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"

namespace rmsprop_op {

// The variant of an update: which slots it has, and with extras `x`,
// Keras's steps around it (the gradient step's transform is chosen by the
// device: GradientTransformOf on the CPU, the general one on the GPU).
inline rmsprop_math::VariantChoice ChoiceOf(const CompactUpdate& u,
                                            const rmsprop_math::Extras<float>* x = nullptr) {
  rmsprop_math::VariantChoice choice;
  choice.centered = u.centered;
  choice.momentum = u.momentum;
  choice.extras = x != nullptr;
  choice.ema = x != nullptr && u.ema != nullptr;
  choice.decay = x != nullptr && x->decay;
  return choice;
}

namespace functor {

// Updates every element of u.var and every block of its slots: each block
// is decoded to float32, updated by rmsprop_math::UpdateElement, and
// encoded again (compact_state.py's formats, bit for bit). With `x`,
// Keras's steps around the update run in the same pass (x->clip_divisor is
// the variable's own).
template <typename Device>
struct DenseApplyCompactRMSProp {
  DeviceStatus operator()(const Device& d, const CompactUpdate& u,
                          const rmsprop_math::Hyper<float>& h,
                          const rmsprop_math::Extras<float>* x);
};

// Updates the rows named by `indices` (u.grad holds one row per index,
// duplicates summed in index-position order first); only the blocks that
// hold those rows are decoded and encoded again, the others are neither read
// nor written. Returns -1 on success or, without writing anything, the
// position of the first index outside [0, rows). CPU only (the GPU's is
// EnqueueSparseApplyCompactRMSProp, cuda/gpu_functors.h).
template <typename Device, typename Tindex>
struct SparseApplyCompactRMSProp {
  int64_t operator()(const Device& d, const CompactUpdate& u, const Tindex* indices,
                     int64_t num_indices, const rmsprop_math::Hyper<float>& h);
};

}  // namespace functor
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_COMPACT_FUNCTORS_H_
