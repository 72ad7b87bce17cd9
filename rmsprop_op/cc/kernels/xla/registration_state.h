// Whether XLA can compile our ops on one of its devices, for the loader
// (rmsprop_op/_loader.py reads it through an exported function per library).
#ifndef RMSPROP_OP_CC_KERNELS_XLA_REGISTRATION_STATE_H_
#define RMSPROP_OP_CC_KERNELS_XLA_REGISTRATION_STATE_H_

#include <string>

#include "tensorflow/core/framework/op_kernel.h"

namespace rmsprop_op {
namespace xla_kernels {

// 1 when XLA can compile our ops on `jit_device` ("XLA_CPU_JIT"), -1 when XLA
// made its compilation kernels before this library was loaded (it does so
// once, at the first XLA compilation, from the XLA kernels registered so far;
// ours then never join).
inline int RegistrationState(const char* jit_device) {
  const std::string device = std::string("device='") + jit_device + "'";
  const auto registered = [&](const char* op) {
    return tensorflow::KernelsRegisteredForOp(op).find(device) != std::string::npos;
  };
  if (!registered("Identity")) return 1;  // not made yet: ours will be
  return registered("FusedResourceApplyRMSProp") ? 1 : -1;
}

}  // namespace xla_kernels
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_XLA_REGISTRATION_STATE_H_
