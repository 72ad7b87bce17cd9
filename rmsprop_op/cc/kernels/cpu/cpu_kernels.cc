// CPU kernel registrations of the fused RMSProp ops, and the one
// instantiation of their functors (cpu_functors.h).
#define EIGEN_USE_THREADS

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/kernel_registration.h"
#include "rmsprop_op/cc/kernels/common/op_kernels.h"
#include "rmsprop_op/cc/kernels/common/variable_access.h"
#include "rmsprop_op/cc/kernels/cpu/cpu_functors.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"

namespace rmsprop_op {

template <>
void DeviceMemcpy<CPUDevice>(const CPUDevice& d, void* dst, const void* src,
                             size_t bytes) {
  d.memcpy(dst, src, bytes);
}

#define RMSPROP_DEFINE_CPU_FUNCTORS(T) RMSPROP_CPU_FUNCTORS(, T)
#define RMSPROP_DEFINE_CPU_NORMS_FUNCTOR(T) RMSPROP_CPU_NORMS_FUNCTOR(, T)
RMSPROP_FOR_EACH_DTYPE(RMSPROP_DEFINE_CPU_FUNCTORS)
RMSPROP_FOR_EACH_REAL_DTYPE(RMSPROP_DEFINE_CPU_NORMS_FUNCTOR)
#undef RMSPROP_DEFINE_CPU_FUNCTORS
#undef RMSPROP_DEFINE_CPU_NORMS_FUNCTOR

#define RMSPROP_REGISTER_CPU(T) \
  RMSPROP_REGISTER_KERNELS(CPUDevice, ::tensorflow::DEVICE_CPU, T, \
                           ::rmsprop_op::SparseApplyRMSPropOp);

RMSPROP_FOR_EACH_DTYPE(RMSPROP_REGISTER_CPU)
#undef RMSPROP_REGISTER_CPU

#define RMSPROP_REGISTER_NORMS_CPU(T) \
  RMSPROP_REGISTER_NORMS_KERNEL(CPUDevice, ::tensorflow::DEVICE_CPU, T)
RMSPROP_FOR_EACH_REAL_DTYPE(RMSPROP_REGISTER_NORMS_CPU)
#undef RMSPROP_REGISTER_NORMS_CPU

}  // namespace rmsprop_op

