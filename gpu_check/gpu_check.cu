// Standalone check of the CUDA kernels of the fused RMSProp ops.
//
// Runs every kernel variant (dense and sparse; plain and centered; with and
// without momentum; float32, float64, float16, bfloat16, complex64 and
// complex128; int32 and int64
// indices) on random data, compares each result bit for bit with a CPU
// reference built on the same formula header, then times the float32 kernels
// against a device-to-device copy. Needs no TensorFlow: `make gpu-check`.
// Without a usable GPU it says so and exits 0.
#include <cuda_runtime.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/common/variant.h"
#include "rmsprop_op/cc/kernels/cuda/cuda_common.cu.h"
#include "rmsprop_op/cc/kernels/cuda/dense_kernel.cu.h"
#include "rmsprop_op/cc/kernels/cuda/sparse_kernel.cu.h"

namespace {

namespace gpu = rmsprop_op::gpu;
using rmsprop_op::ComputeType;
using rmsprop_op::DenseUpdate;
using rmsprop_op::ExtrasOf;
using rmsprop_op::HyperOf;
using rmsprop_op::RealOf;
using rmsprop_op::SlotPointers;

#include "gpu_check/gpu_check_support.cu.h"
#include "gpu_check/gpu_check_reference.cu.h"
#include "gpu_check/gpu_check_dense.cu.h"
#include "gpu_check/gpu_check_sparse.cu.h"

template <typename T>
void CheckType(cudaStream_t stream, std::mt19937_64& rng, Tally* tally) {
  CheckDenseAll<T>(stream, rng, tally);
  CheckSparseAll<T, int32_t>(stream, rng, tally);
  CheckSparseAll<T, int64_t>(stream, rng, tally);
}


#include "gpu_check/gpu_check_timing.cu.h"

}  // namespace

// gpu_check            every check, then the timings
// gpu_check --quick    every check, no timings (for compute-sanitizer)
// gpu_check --has-gpu  exits 0 where a GPU is visible, 1 elsewhere
int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool probe = argc > 1 && std::strcmp(argv[1], "--has-gpu") == 0;
  int devices = 0;
  const cudaError_t err = cudaGetDeviceCount(&devices);
  if (probe) return err == cudaSuccess && devices > 0 ? 0 : 1;
  if (err != cudaSuccess || devices == 0) {
    std::printf("no GPU: skipping (%s)\n",
                err != cudaSuccess ? cudaGetErrorString(err)
                                   : "no CUDA device found");
    return 0;
  }
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("GPU 0: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major,
              prop.minor, prop.multiProcessorCount);
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  // Keep freed scratch memory for the next call, as TensorFlow's allocator
  // does, so that the timings do not include mapping fresh pages.
  cudaMemPool_t pool;
  CHECK_CUDA(cudaDeviceGetDefaultMemPool(&pool, 0));
  uint64_t keep = UINT64_MAX;
  CHECK_CUDA(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold,
                                     &keep));

  // The CPU reference runs as TensorFlow runs its CPU kernels: subnormal
  // inputs read as zero, subnormal results flushed (MXCSR DAZ and FTZ).
  _mm_setcsr(_mm_getcsr() | 0x8040);
  std::mt19937_64 rng(20240607);
  Tally tally;
  CheckType<float>(stream, rng, &tally);
  CheckType<double>(stream, rng, &tally);
  CheckType<__half>(stream, rng, &tally);
  CheckType<__nv_bfloat16>(stream, rng, &tally);
  CheckType<rmsprop_math::Complex<float>>(stream, rng, &tally);
  CheckType<rmsprop_math::Complex<double>>(stream, rng, &tally);
  std::printf("%d checks passed, %d failed\n", tally.passed, tally.failed);
  if (tally.failed > 0) return 1;

  if (!quick) RunTimings(stream, rng);
  CHECK_CUDA(cudaStreamDestroy(stream));
  return 0;
}
