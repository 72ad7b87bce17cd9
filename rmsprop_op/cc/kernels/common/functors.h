// Device functors of the fused RMSProp ops, declared once for CPU and GPU.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_FUNCTORS_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_FUNCTORS_H_

#include <complex>
#include <cstdint>
#include <type_traits>

#include "rmsprop_op/cc/kernels/common/dtypes.h"
#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/common/variant.h"

namespace rmsprop_op {

// The buffers one update writes; mg and mom are null when the update is not
// centered or has no momentum slot, ema without an EMA slot (the grouped
// op's extras).
template <typename T>
struct SlotPointers {
  T* var;
  T* ms;
  T* mg;
  T* mom;
  T* ema = nullptr;

  // The same slots advanced by `offset` elements.
  SlotPointers At(int64_t offset) const {
    return {var + offset, ms + offset, mg ? mg + offset : nullptr,
            mom ? mom + offset : nullptr, ema ? ema + offset : nullptr};
  }

  // The variant these slots call for; with extras `x`, Keras's steps around
  // the update too.
  template <typename X = void>
  rmsprop_math::VariantChoice Choice(const X* x = nullptr) const {
    rmsprop_math::VariantChoice choice;
    choice.centered = mg != nullptr;
    choice.momentum = mom != nullptr;
    if constexpr (!std::is_void<X>::value) {
      choice.extras = x != nullptr;
      choice.ema = x != nullptr && ema != nullptr;
      choice.decay = x != nullptr && x->decay;
    }
    return choice;
  }
};

// One dense update: `size` elements of slots and grad. clip_divisor is the
// variable's own clipnorm divisor when the update has extras.
template <typename T>
struct DenseUpdate {
  SlotPointers<T> slots;
  const T* grad;
  int64_t size;
  double clip_divisor = 1.0;
};

// What a device functor reports. The CUDA half of the GPU library cannot
// build a tensorflow::Status, so a failed CUDA call comes back as the step
// that failed and the device's message, and the op fails with them (the
// process never aborts). CPU functors always succeed.
struct DeviceStatus {
  const char* failed_step = nullptr;  // e.g. "the dense RMSProp update"
  const char* message = nullptr;      // the device's error message
  // Scratch memory ran out before anything was enqueued; TensorFlow's
  // allocator has already set the op's status.
  bool out_of_memory = false;
  bool ok() const { return failed_step == nullptr && !out_of_memory; }
};

// The blocks of the squared norms: kNormLanes x kNormRows elements each,
// summed on their own in a fixed order (cpu/squared_norms.h), the block sums
// of a gradient then added in order.
constexpr int kNormLanes = 256;
constexpr int kNormRows = 64;
constexpr int64_t kNormBlock = int64_t{kNormLanes} * kNormRows;

namespace functor {

// Updates every element of one or more variables (the grouped op passes
// many). All updates share the hyperparameters and the centered/momentum
// choice. With `x` (real dtypes), Keras's steps around the update run in the
// same pass (rmsprop_math::UpdateElement; each update's clip_divisor replaces
// the extras').
template <typename Device, typename T>
struct DenseApplyRMSProp {
  DeviceStatus operator()(const Device& d, const DenseUpdate<T>* updates,
                          int num_updates, const HyperOf<T>& h,
                          const ExtrasOf<T>* x);
};

// Sums of squares of `num_grads` gradients, each element divided by
// `divisor` first (in the compute type, as Keras unscales), accumulated in
// double in a fixed order: the same bits on any number of threads and on
// either device.
template <typename Device, typename T>
struct SquaredNorms {
  DeviceStatus operator()(const Device& d, const T* const* grads,
                          const int64_t* sizes, int num_grads, double divisor,
                          double* out);
};

// Updates the rows named by `indices` (num_indices of them, each row_size
// elements; grad holds one row per index). Duplicate indices are summed in
// index-position order before the update. Returns -1 on success or, without
// writing anything, the position of the first index outside [0, num_rows).
// CPU only: on a GPU the update is enqueued and its answer arrives later
// (EnqueueSparseApplyRMSProp, cuda/gpu_functors.h).
template <typename Device, typename T, typename Tindex>
struct SparseApplyRMSProp {
  int64_t operator()(const Device& d, const SlotPointers<T>& slots,
                     const T* grad, const Tindex* indices, int64_t num_indices,
                     int64_t num_rows, int64_t row_size, const HyperOf<T>& h);
};

}  // namespace functor
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_FUNCTORS_H_
