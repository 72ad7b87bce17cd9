// The CUDA kernel of the dense updates with compact state
// (compact_format.h): one thread block per state block, one thread per
// element; the block's scale is a block-wide maximum of the magnitudes' bits.
// The sparse updates' kernel (sparse_compact_kernel.cu.h) shares its steps.
#ifndef RMSPROP_OP_CC_KERNELS_CUDA_COMPACT_KERNEL_CU_H_
#define RMSPROP_OP_CC_KERNELS_CUDA_COMPACT_KERNEL_CU_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "rmsprop_op/cc/kernels/common/compact_format.h"
#include "rmsprop_op/cc/kernels/common/compact_functors.h"
#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/common/variant.h"
#include "rmsprop_op/cc/kernels/cuda/cuda_common.cu.h"

namespace rmsprop_op {
namespace gpu {

static_assert(kCompactBlockSize == kThreads, "one thread per element of a state block");

// Element i (of block b) of an int8 slot.
__device__ __forceinline__ float DecodeAt(const CompactSlot& slot, int64_t i, int64_t b,
                                          bool is_signed) {
  const uint32_t scale_bits = __float_as_uint(slot.scales[b]);
  return is_signed ? compact::DecodeSigned(slot.codes[i], scale_bits)
                   : compact::DecodeUnsigned(slot.codes[i], scale_bits);
}

// The largest of `bits` over the thread block (all threads call it).
__device__ __forceinline__ uint32_t BlockMax(uint32_t bits, uint32_t* shared) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    bits = max(bits, __shfl_xor_sync(0xffffffffu, bits, offset));
  }
  if (threadIdx.x == 0) *shared = 0;
  __syncthreads();
  if (threadIdx.x % kWarpSize == 0) atomicMax(shared, bits);
  __syncthreads();
  const uint32_t result = *shared;
  __syncthreads();  // before the next call resets it
  return result;
}

// Encodes one slot's new value (every thread of the block, inactive ones
// with 0) into the block's codes and scale.
__device__ __forceinline__ void EncodeSlot(float value, bool active, bool is_signed,
                                           uint8_t* codes, float* scale_out, uint32_t* shared) {
  // A NaN's magnitude bits exceed infinity's: the scale is then NaN.
  const uint32_t largest = BlockMax(active ? __float_as_uint(value) & 0x7fffffffu : 0u, shared);
  const uint32_t scale_bits = largest > compact::kInfinityBits ? 0x7fc00000u : largest;
  if (threadIdx.x == 0) *scale_out = __uint_as_float(scale_bits);
  if (!active) return;
  *codes = static_cast<uint8_t>(is_signed ? compact::SignedCode(value, scale_bits)
                                          : compact::UnsignedCode(value, scale_bits));
}

// Element i of block b: every int8 slot of the update encoded (every thread
// of the block calls it).
template <typename V>
__device__ __forceinline__ void EncodeSlots(const CompactUpdate& u, int64_t b, int64_t i,
                                            bool active, float ms, float mg, float mom,
                                            uint32_t* largest) {
  EncodeSlot(ms, active, false, u.ms.codes + i, u.ms.scales + b, largest);
  if (V::kCentered) EncodeSlot(mg, active, true, u.mg.codes + i, u.mg.scales + b, largest);
  if (V::kMomentum) EncodeSlot(mom, active, true, u.mom.codes + i, u.mom.scales + b, largest);
}

template <typename V, StateFormat kFormat>
__global__ void __launch_bounds__(kThreads)
    DenseCompactKernel(const CompactUpdate u, const rmsprop_math::Hyper<float> h,
                       const rmsprop_math::Extras<float> x) {
  __shared__ uint32_t largest;
  constexpr bool kInt8 = kFormat == StateFormat::kInt8;
  const BlockLayout& l = u.layout;
  for (int64_t b = blockIdx.x; b < l.num_blocks(); b += gridDim.x) {
    const int64_t offset = l.BlockOffset(b);
    const int64_t n = l.BlockRows(b) * l.BlockColumns(b);
    const bool active = threadIdx.x < n;
    const int64_t i = offset + threadIdx.x;
    float var = 0.0f, g = 0.0f, ms = 0.0f, mg = 0.0f, mom = 0.0f, ema = 0.0f;
    if (active) {
      var = u.var[i];
      g = u.grad[i];
      if constexpr (kInt8) {
        ms = DecodeAt(u.ms, i, b, false);
        if (V::kCentered) mg = DecodeAt(u.mg, i, b, true);
        if (V::kMomentum) mom = DecodeAt(u.mom, i, b, true);
      } else {
        ms = __bfloat162float(__ushort_as_bfloat16(u.ms.bfloat16[i]));
        if (V::kCentered) mg = __bfloat162float(__ushort_as_bfloat16(u.mg.bfloat16[i]));
        if (V::kMomentum) mom = __bfloat162float(__ushort_as_bfloat16(u.mom.bfloat16[i]));
      }
      if (V::kCentered) ms = compact::ConsistentMeanSquare(ms, mg);
      if (V::UpdatesEma(x)) ema = u.ema[i];
      rmsprop_math::UpdateElement<V, float>(g, var, ms, mg, mom, ema, h, x);
      u.var[i] = var;
      if (V::UpdatesEma(x)) u.ema[i] = ema;
    }
    if constexpr (kInt8) {
      EncodeSlots<V>(u, b, i, active, ms, mg, mom, &largest);
    } else if (active) {
      u.ms.bfloat16[i] = __bfloat16_as_ushort(FromCompute<__nv_bfloat16>(ms));
      if (V::kCentered) u.mg.bfloat16[i] = __bfloat16_as_ushort(FromCompute<__nv_bfloat16>(mg));
      if (V::kMomentum) {
        u.mom.bfloat16[i] = __bfloat16_as_ushort(FromCompute<__nv_bfloat16>(mom));
      }
    }
  }
}

// Enqueues the dense update with compact state on `stream`; with `x`,
// Keras's steps around it (decided at run time, as the grouped op's).
inline cudaError_t LaunchDenseCompactApply(cudaStream_t stream, const CompactUpdate& u,
                                           const rmsprop_math::Hyper<float>& h,
                                           const rmsprop_math::Extras<float>* x) {
  const int64_t num_blocks = u.layout.num_blocks();
  if (num_blocks <= 0) return cudaSuccess;
  const int blocks = static_cast<int>(std::min<int64_t>(num_blocks, ResidentBlocks(kThreads)));
  const rmsprop_math::Extras<float> extras = x != nullptr ? *x : rmsprop_math::Extras<float>{};
  rmsprop_math::DispatchVariant<rmsprop_math::ExtrasDispatch::kAtRunTime>(
      ChoiceOf(u, x), [&](auto variant) {
        using V = decltype(variant);
        if (u.format == StateFormat::kInt8) {
          DenseCompactKernel<V, StateFormat::kInt8><<<blocks, kThreads, 0, stream>>>(u, h, extras);
        } else {
          DenseCompactKernel<V, StateFormat::kBfloat16>
              <<<blocks, kThreads, 0, stream>>>(u, h, extras);
        }
      });
  return cudaGetLastError();
}

}  // namespace gpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CUDA_COMPACT_KERNEL_CU_H_
