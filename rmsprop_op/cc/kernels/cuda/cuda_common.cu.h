// What the CUDA kernels of the fused RMSProp updates share: storage and
// compute types, vector loads and stores, one element's update, launch sizes.
// The kernels themselves are in dense_kernel.cu.h, sparse_kernel.cu.h and
// norms_kernel.cu.h.
//
// No TensorFlow here: the op library (gpu_functors.cu.cc) and the
// standalone checker (gpu_check/) include this same header, so the checker
// exercises exactly the code the ops run. Variables are stored as float,
// double, __half, __nv_bfloat16 or rmsprop_math::Complex; arithmetic is in
// ComputeType (float for the 16-bit types) through rmsprop_math.h, the
// formula every implementation shares.
//
// Must be compiled by nvcc with -fmad=false (tools/tf_build_flags.py), so
// that every multiply and add rounds separately as in the CPU kernels; with
// IEEE division and sqrt, results then match the CPU kernels bit for bit.
#ifndef RMSPROP_OP_CC_KERNELS_CUDA_CUDA_COMMON_CU_H_
#define RMSPROP_OP_CC_KERNELS_CUDA_CUDA_COMMON_CU_H_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "rmsprop_op/cc/kernels/common/flushed_double.h"
#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/common/variant.h"

namespace rmsprop_op {
namespace gpu {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;

// Stream-ordered scratch memory: a buffer may be freed as soon as the work
// using it is enqueued. Allocate returns null when memory is exhausted.
class ScratchAllocator {
 public:
  virtual ~ScratchAllocator() = default;
  virtual void* Allocate(size_t bytes) = 0;
  virtual void Free(void* buffer) = 0;
};

// A dtype on the GPU: the CUDA type with the bits of each TensorFlow type
// (Eigen's types are only declared here), and the conversions between it
// and its compute type.
template <typename T>
struct CudaTypeOf {
  using type = T;
};
template <>
struct CudaTypeOf<Eigen::half> {
  using type = __half;
};
template <>
struct CudaTypeOf<Eigen::bfloat16> {
  using type = __nv_bfloat16;
};
template <typename R>
struct CudaTypeOf<std::complex<R>> {
  using type = rmsprop_math::Complex<R>;
};
template <typename T>
using CudaType = typename CudaTypeOf<T>::type;

// Conversions between the storage type and the compute type. Host and device,
// so that the checker's CPU reference rounds the same way.
__host__ __device__ __forceinline__ float ToCompute(float x) { return x; }
__host__ __device__ __forceinline__ double ToCompute(double x) { return x; }
__host__ __device__ __forceinline__ float ToCompute(__half x) {
  return __half2float(x);
}
__host__ __device__ __forceinline__ float ToCompute(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <typename R>
__host__ __device__ __forceinline__ rmsprop_math::Complex<R> ToCompute(
    rmsprop_math::Complex<R> x) {
  return x;
}

template <typename T>
__host__ __device__ __forceinline__ T FromCompute(ComputeType<T> x) {
  return static_cast<T>(x);
}
// CUDA narrows every NaN to 0x7fff; the CPU narrows the canonical NaN
// (rmsprop_math::CanonicalNaN) to the quiet NaN of the narrow type.
template <>
__host__ __device__ __forceinline__ __half FromCompute<__half>(float x) {
  return x != x ? __ushort_as_half(0x7e00) : __float2half_rn(x);
}
template <>
__host__ __device__ __forceinline__ __nv_bfloat16 FromCompute<__nv_bfloat16>(
    float x) {
  return x != x ? __ushort_as_bfloat16(0x7fc0) : __float2bfloat16_rn(x);
}

// The compute type in the kernels: ComputeType<T>, with float64 (also each
// part of complex128) as rmsprop_math::FlushedDouble, which flushes as the
// CPU does (float32 flushes by -ftz=true).
template <typename C>
struct DeviceComputeOf {
  using type = C;
};
template <>
struct DeviceComputeOf<double> {
  using type = rmsprop_math::FlushedDouble;
};
template <>
struct DeviceComputeOf<rmsprop_math::Complex<double>> {
  using type = rmsprop_math::Complex<rmsprop_math::FlushedDouble>;
};
template <typename T>
using DeviceCompute = typename DeviceComputeOf<ComputeType<T>>::type;
template <typename T>
using DeviceReal = typename DeviceComputeOf<typename RealOf<ComputeType<T>>::type>::type;

__device__ __forceinline__ rmsprop_math::Complex<rmsprop_math::FlushedDouble>
ToDevice(rmsprop_math::Complex<double> z) {
  return {rmsprop_math::FlushedDouble(z.re), rmsprop_math::FlushedDouble(z.im)};
}
__device__ __forceinline__ rmsprop_math::Complex<double> FromDevice(
    rmsprop_math::Complex<rmsprop_math::FlushedDouble> z) {
  return {static_cast<double>(z.re), static_cast<double>(z.im)};
}
template <typename C>
__device__ __forceinline__ typename DeviceComputeOf<C>::type ToDevice(C x) {
  return x;
}
template <typename C>
__device__ __forceinline__ C FromDevice(C x) {
  return x;
}
__device__ __forceinline__ double FromDevice(rmsprop_math::FlushedDouble x) {
  return x;
}

// The hyperparameters and extras in the device's compute reals.
template <typename T, typename Host>
__device__ __forceinline__ auto ToDeviceReals(const Host& host) {
  return rmsprop_math::ConvertAll<DeviceReal<T>>(
      host, [](typename RealOf<ComputeType<T>>::type v) { return DeviceReal<T>(v); });
}

// Kernel parameters read in place, not copied to local memory (sm_70+).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
#define RMSPROP_GRID_CONSTANT
#else
#define RMSPROP_GRID_CONSTANT __grid_constant__
#endif

// Elements per 16-byte access: the widest load a thread can issue.
template <typename T>
constexpr int kVectorWidth = static_cast<int>(16 / sizeof(T));

inline bool IsAligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

template <typename T>
bool SlotsAligned16(const SlotPointers<T>& s) {
  return IsAligned16(s.var) && IsAligned16(s.ms) &&
         (s.mg == nullptr || IsAligned16(s.mg)) &&
         (s.mom == nullptr || IsAligned16(s.mom)) &&
         (s.ema == nullptr || IsAligned16(s.ema));
}

template <typename T, int kN>
struct Pack {
  T v[kN];
};

// Loads kN elements; p must be 16-byte aligned when kN elements are 16 bytes.
template <typename T, int kN>
__device__ __forceinline__ Pack<T, kN> LoadPack(const T* p) {
  Pack<T, kN> out;
  if constexpr (kN * sizeof(T) == 16) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    memcpy(&out, &raw, sizeof(raw));
  } else {
#pragma unroll
    for (int e = 0; e < kN; ++e) out.v[e] = p[e];
  }
  return out;
}

template <typename T, int kN>
__device__ __forceinline__ void StorePack(T* p, const Pack<T, kN>& in) {
  if constexpr (kN * sizeof(T) == 16) {
    uint4 raw;
    memcpy(&raw, &in, sizeof(raw));
    // A plain store of `raw` is split into kN scalar stores; the intrinsic
    // (an ordinary write-back store) keeps it one 16-byte access.
    __stwb(reinterpret_cast<uint4*>(p), raw);
  } else {
#pragma unroll
    for (int e = 0; e < kN; ++e) p[e] = in.v[e];
  }
}

// Updates kN consecutive elements at `offset` of the variant V with the
// gradients g (already in the compute type). Every load is issued before
// the first store: the compiler cannot know that the slots do not alias, and
// loads in flight together are what keeps memory busy.
template <typename V, typename T, int kN>
__device__ __forceinline__ void UpdatePack(
    const SlotPointers<T>& slots, int64_t offset, const DeviceCompute<T> (&g)[kN],
    const rmsprop_math::Hyper<DeviceReal<T>>& h,
    const rmsprop_math::Extras<DeviceReal<T>>& x) {
  using C = DeviceCompute<T>;
  const bool has_ema = V::kExtras && V::UpdatesEma(x);
  Pack<T, kN> var = LoadPack<T, kN>(slots.var + offset);
  Pack<T, kN> ms = LoadPack<T, kN>(slots.ms + offset);
  Pack<T, kN> mg;
  Pack<T, kN> mom;
  Pack<T, kN> ema;
  if constexpr (V::kCentered) mg = LoadPack<T, kN>(slots.mg + offset);
  if constexpr (V::kMomentum) mom = LoadPack<T, kN>(slots.mom + offset);
  if (has_ema) ema = LoadPack<T, kN>(slots.ema + offset);
#pragma unroll
  for (int e = 0; e < kN; ++e) {
    C var_e = ToDevice(ToCompute(var.v[e]));
    C ms_e = ToDevice(ToCompute(ms.v[e]));
    C mg_e = C(0);
    C mom_e = C(0);
    C ema_e = C(0);
    if constexpr (V::kCentered) mg_e = ToDevice(ToCompute(mg.v[e]));
    if constexpr (V::kMomentum) mom_e = ToDevice(ToCompute(mom.v[e]));
    if (has_ema) ema_e = ToDevice(ToCompute(ema.v[e]));
    rmsprop_math::UpdateElement<V, C>(g[e], var_e, ms_e, mg_e, mom_e, ema_e, h, x);
    var.v[e] = FromCompute<T>(FromDevice(var_e));
    ms.v[e] = FromCompute<T>(FromDevice(ms_e));
    if constexpr (V::kCentered) mg.v[e] = FromCompute<T>(FromDevice(mg_e));
    if constexpr (V::kMomentum) mom.v[e] = FromCompute<T>(FromDevice(mom_e));
    if (has_ema) ema.v[e] = FromCompute<T>(FromDevice(ema_e));
  }
  StorePack<T, kN>(slots.var + offset, var);
  StorePack<T, kN>(slots.ms + offset, ms);
  if constexpr (V::kCentered) StorePack<T, kN>(slots.mg + offset, mg);
  if constexpr (V::kMomentum) StorePack<T, kN>(slots.mom + offset, mom);
  if (has_ema) StorePack<T, kN>(slots.ema + offset, ema);
}

template <typename T, int kN>
__device__ __forceinline__ void LoadGradient(const T* grad,
                                             DeviceCompute<T> (&g)[kN]) {
  const Pack<T, kN> p = LoadPack<T, kN>(grad);
#pragma unroll
  for (int e = 0; e < kN; ++e) g[e] = ToDevice(ToCompute(p.v[e]));
}

template <typename V, typename T>
__device__ __forceinline__ void UpdateOne(const SlotPointers<T>& slots, const T* grad,
                                          int64_t i,
                                          const rmsprop_math::Hyper<DeviceReal<T>>& h,
                                          const rmsprop_math::Extras<DeviceReal<T>>& x) {
  DeviceCompute<T> g[1];
  LoadGradient<T, 1>(grad + i, g);
  UpdatePack<V, T, 1>(slots, i, g, h, x);
}

// The number of blocks of `threads` threads the current device holds at once:
// grid-stride kernels launch no more than this.
inline int ResidentBlocks(int threads) {
  int device = 0;
  int sms = 0;
  int threads_per_sm = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&threads_per_sm,
                             cudaDevAttrMaxThreadsPerMultiProcessor,
                             device) != cudaSuccess) {
    return 1024;  // a launch-size hint only; the launch reports real errors
  }
  return std::max(1, sms * (threads_per_sm / threads));
}

__host__ __device__ inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }


// Reinterprets TensorFlow's 16-bit types (Eigen::half, Eigen::bfloat16) as
// CUDA's, which have the same bits. T may be incomplete here (the op library
// only declares Eigen's types); the library checks the sizes where it can.
template <typename D, typename T>
SlotPointers<D> AsDevice(const SlotPointers<T>& s) {
  return {reinterpret_cast<D*>(s.var), reinterpret_cast<D*>(s.ms),
          reinterpret_cast<D*>(s.mg), reinterpret_cast<D*>(s.mom),
          reinterpret_cast<D*>(s.ema)};
}

}  // namespace gpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CUDA_CUDA_COMMON_CU_H_
