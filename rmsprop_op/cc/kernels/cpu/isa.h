// The instruction sets the CPU loops are compiled for, and the one this
// processor runs: the loops are compiled three times (AVX-512, AVX2,
// baseline x86-64) and the widest one supported is picked at run time, so
// that sqrt and division run as vector instructions without building the
// library for one machine only.
#ifndef RMSPROP_OP_CC_KERNELS_CPU_ISA_H_
#define RMSPROP_OP_CC_KERNELS_CPU_ISA_H_

#define RMSPROP_AVX2_TARGET __attribute__((target("avx2,f16c,fma")))
#define RMSPROP_AVX512_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,f16c,fma")))

namespace rmsprop_op {
namespace cpu {

enum class Isa { kBaseline, kAvx2, kAvx512 };

inline Isa DetectIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return Isa::kAvx2;
  }
  return Isa::kBaseline;
}

// Detected once, on first use.
inline Isa CurrentIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_ISA_H_
