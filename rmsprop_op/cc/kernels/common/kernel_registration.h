// The kernel registrations of the fused RMSProp ops, for one device and
// dtype at a time; the scalar inputs are host memory on every device.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_KERNEL_REGISTRATION_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_KERNEL_REGISTRATION_H_

#include "rmsprop_op/cc/kernels/common/compact_op_kernels.h"
#include "rmsprop_op/cc/kernels/common/hyperparameters.h"
#include "rmsprop_op/cc/kernels/common/op_kernels.h"
#include "tensorflow/core/framework/op_kernel.h"

#define RMSPROP_HOST_MEMORY(name, ...) .HostMemory(#name)

// The kernel builder of op NAME on one device; the hyperparameters are host
// scalars on every device.
#define RMSPROP_KERNEL_BUILDER(NAME, DEVICE_TYPE, T)                    \
  Name(NAME)                                                            \
      .Device(DEVICE_TYPE)                                              \
      RMSPROP_HYPERPARAMETERS(RMSPROP_HOST_MEMORY)                      \
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
          RMSPROP_EXTRAS(RMSPROP_HOST_MEMORY)                                    \
          .HostMemory("clip_divisors"),                                          \
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

// The ops with compact state (float32 variables only): the dense ones of one
// device, and the sparse ones of one device for one index type (SPARSE_OP:
// their kernel class template).
#define RMSPROP_COMPACT_KERNEL_BUILDER(NAME, DEVICE_TYPE)                             \
  Name(NAME).Device(DEVICE_TYPE) RMSPROP_HYPERPARAMETERS(RMSPROP_HOST_MEMORY)

#define RMSPROP_REGISTER_COMPACT_DENSE_KERNELS(DEVICE, DEVICE_TYPE)                   \
  REGISTER_KERNEL_BUILDER(                                                            \
      RMSPROP_COMPACT_KERNEL_BUILDER("FusedResourceApplyCompactRMSProp", DEVICE_TYPE)  \
          RMSPROP_EXTRAS(RMSPROP_HOST_MEMORY)                                         \
          .HostMemory("clip_divisors"),                                               \
      ::rmsprop_op::DenseApplyCompactRMSPropOp<DEVICE, false>);                       \
  REGISTER_KERNEL_BUILDER(                                                            \
      RMSPROP_COMPACT_KERNEL_BUILDER("FusedResourceApplyCenteredCompactRMSProp",      \
                                     DEVICE_TYPE)                                     \
          RMSPROP_EXTRAS(RMSPROP_HOST_MEMORY)                                         \
          .HostMemory("clip_divisors"),                                               \
      ::rmsprop_op::DenseApplyCompactRMSPropOp<DEVICE, true>)

#define RMSPROP_REGISTER_COMPACT_SPARSE_KERNELS(DEVICE, DEVICE_TYPE, Tindex, SPARSE_OP) \
  REGISTER_KERNEL_BUILDER(                                                            \
      RMSPROP_COMPACT_KERNEL_BUILDER("FusedResourceSparseApplyCompactRMSProp",        \
                                     DEVICE_TYPE)                                     \
          .TypeConstraint<Tindex>("Tindices"),                                        \
      SPARSE_OP<DEVICE, Tindex, false>);                                              \
  REGISTER_KERNEL_BUILDER(                                                            \
      RMSPROP_COMPACT_KERNEL_BUILDER("FusedResourceSparseApplyCenteredCompactRMSProp", \
                                     DEVICE_TYPE)                                     \
          .TypeConstraint<Tindex>("Tindices"),                                        \
      SPARSE_OP<DEVICE, Tindex, true>)

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_KERNEL_REGISTRATION_H_
