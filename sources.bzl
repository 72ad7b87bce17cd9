"""The sources of the op libraries: the one list that the Makefile, setup.py
(both through tools/tf_build_flags.py) and the Bazel BUILD file read."""

# The ops, their CPU kernels and their XLA kernels for the CPU:
# rmsprop_op/_rmsprop_ops.so.
CPU_SOURCES = [
    "rmsprop_op/cc/ops/rmsprop_ops.cc",
    "rmsprop_op/cc/kernels/cpu/cpu_kernels.cc",
    "rmsprop_op/cc/kernels/cpu/compact_cpu_kernels.cc",
    "rmsprop_op/cc/kernels/xla/cpu_xla.cc",
]

# The GPU kernels: rmsprop_op/_rmsprop_gpu_kernels.so. The registrations are
# compiled by the host compiler against TensorFlow, the functors by nvcc.
GPU_REGISTRATION_SOURCES = [
    "rmsprop_op/cc/kernels/cuda/gpu_kernels.cc",
    "rmsprop_op/cc/kernels/xla/gpu_xla.cc",
]
GPU_CUDA_SOURCES = [
    "rmsprop_op/cc/kernels/cuda/gpu_functors.cu.cc",
]
