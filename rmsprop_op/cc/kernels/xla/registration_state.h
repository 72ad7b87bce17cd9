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

// Defines the exported `int FUNCTION()` the loader calls: RegistrationState
// of JIT_DEVICE, or 0 where the library was built without XLA kernels.
#ifdef RMSPROP_OP_XLA
#define RMSPROP_DEFINE_XLA_STATE(FUNCTION, JIT_DEVICE)                  \
  extern "C" __attribute__((visibility("default"))) int FUNCTION() {    \
    return ::rmsprop_op::xla_kernels::RegistrationState(JIT_DEVICE);    \
  }
#else
#define RMSPROP_DEFINE_XLA_STATE(FUNCTION, JIT_DEVICE) \
  extern "C" __attribute__((visibility("default"))) int FUNCTION() { return 0; }
#endif

#endif  // RMSPROP_OP_CC_KERNELS_XLA_REGISTRATION_STATE_H_
