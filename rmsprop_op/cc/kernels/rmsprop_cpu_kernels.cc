// CPU functors and kernel registrations of the fused RMSProp ops.
//
// The element loop is compiled three times (AVX-512, AVX2, baseline x86-64)
// and the widest one the processor supports is picked once at load time, so
// that sqrt and division run as vector instructions without building the
// library for one machine only. Work is split over TensorFlow's intra-op
// thread pool; no threads of our own.
#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include <memory>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "rmsprop_op/cc/kernels/rmsprop_functors.h"
#include "rmsprop_op/cc/kernels/rmsprop_math.h"
#include "rmsprop_op/cc/kernels/rmsprop_op_kernels.h"
#include "rmsprop_op/cc/kernels/variable_access.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {

using CPUDevice = Eigen::ThreadPoolDevice;

template <>
void DeviceMemcpy<CPUDevice>(const CPUDevice& d, void* dst, const void* src,
                             size_t bytes) {
  d.memcpy(dst, src, bytes);
}

namespace {

// Elements per block of the widened half-precision loop: five float buffers
// of this size stay in L1.
constexpr int64_t kWidenBlock = 512;

// One pass over elements [begin, end): read each buffer once, write each
// slot once. G is the gradient's storage type (T, or the compute type for
// summed duplicate rows of a sparse update).
template <typename T, typename G, bool kCentered, bool kMomentum>
__attribute__((always_inline)) inline void UpdateRangeBody(
    const SlotPointers<T>& slots, const G* __restrict__ grad, int64_t begin,
    int64_t end, const HyperOf<T>& h) {
  using C = ComputeType<T>;
  T* __restrict__ var = slots.var;
  T* __restrict__ ms = slots.ms;
  T* __restrict__ mg = slots.mg;
  T* __restrict__ mom = slots.mom;
  const HyperOf<T> hyper = h;  // a local copy the compiler can keep in registers
  for (int64_t i = begin; i < end; ++i) {
    const C g = static_cast<C>(grad[i]);
    C ms_i = static_cast<C>(ms[i]);
    C mg_i = kCentered ? static_cast<C>(mg[i]) : C(0);
    C mom_i = kMomentum ? static_cast<C>(mom[i]) : C(0);
    const C delta = rmsprop_math::UpdateElement<kCentered, kMomentum, C>(
        g, ms_i, mg_i, mom_i, hyper);
    var[i] = static_cast<T>(static_cast<C>(var[i]) - delta);
    ms[i] = static_cast<T>(ms_i);
    if (kCentered) mg[i] = static_cast<T>(mg_i);
    if (kMomentum) mom[i] = static_cast<T>(mom_i);
  }
}

template <typename T, typename G>
using UpdateRangeFn = void (*)(const SlotPointers<T>&, const G*, int64_t,
                               int64_t, const HyperOf<T>&);

#define RMSPROP_AVX2_TARGET __attribute__((target("avx2,f16c,fma")))
#define RMSPROP_AVX512_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,f16c,fma")))

// Compilers do not vectorize Eigen's scalar half and bfloat16 conversions,
// which made those updates several times slower per byte than float. The
// AVX variants therefore widen blocks of half-precision storage to float
// with vector instructions, run the float loop on them, and narrow the
// results back with one round-to-nearest-even, exactly as the scalar path
// rounds.
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Widen(
    const Eigen::half* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Narrow(
    const float* in, Eigen::half* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i),
                                      _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = static_cast<Eigen::half>(in[i]);
}

// bfloat16 is the upper half of a float: widening is a shift; narrowing
// rounds to nearest even and keeps NaNs quiet NaNs of the same sign, as
// Eigen's conversion does. Plain integer loops, which compilers vectorize.
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Widen(
    const Eigen::bfloat16* in, float* out, int64_t n) {
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(in);
  uint32_t wide[kWidenBlock];
  for (int64_t i = 0; i < n; ++i) wide[i] = static_cast<uint32_t>(bits[i]) << 16;
  std::memcpy(out, wide, n * sizeof(float));
}

RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void Narrow(
    const float* in, Eigen::bfloat16* out, int64_t n) {
  uint32_t wide[kWidenBlock];
  std::memcpy(wide, in, n * sizeof(float));
  uint16_t* bits = reinterpret_cast<uint16_t*>(out);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t x = wide[i];
    const bool is_nan = (x & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    bits[i] = static_cast<uint16_t>(is_nan ? ((x >> 16) | 0x0040u) & 0xffc0u
                                           : rounded);
  }
}

template <typename T>
constexpr bool kIsHalfPrecision = std::is_same<T, Eigen::half>::value ||
                                  std::is_same<T, Eigen::bfloat16>::value;

// The float loop over blocks of widened half-precision slots. G is T, or
// float for summed sparse rows (already wide).
template <typename T, typename G, bool kCentered, bool kMomentum>
RMSPROP_AVX2_TARGET __attribute__((always_inline)) inline void UpdateWidened(
    const SlotPointers<T>& slots, const G* grad, int64_t begin, int64_t end,
    const HyperOf<T>& h) {
  alignas(64) float var[kWidenBlock], ms[kWidenBlock], mg[kWidenBlock],
      mom[kWidenBlock], g[kWidenBlock];
  const SlotPointers<float> wide = {var, ms, kCentered ? mg : nullptr,
                                    kMomentum ? mom : nullptr};
  for (int64_t b = begin; b < end; b += kWidenBlock) {
    const int64_t n = std::min<int64_t>(kWidenBlock, end - b);
    Widen(slots.var + b, var, n);
    Widen(slots.ms + b, ms, n);
    if (kCentered) Widen(slots.mg + b, mg, n);
    if (kMomentum) Widen(slots.mom + b, mom, n);
    const float* g_block;
    if constexpr (std::is_same<G, float>::value) {
      g_block = grad + b;
    } else {
      Widen(grad + b, g, n);
      g_block = g;
    }
    UpdateRangeBody<float, float, kCentered, kMomentum>(wide, g_block, 0, n, h);
    Narrow(var, slots.var + b, n);
    Narrow(ms, slots.ms + b, n);
    if (kCentered) Narrow(mg, slots.mg + b, n);
    if (kMomentum) Narrow(mom, slots.mom + b, n);
  }
}

}  // namespace
}  // namespace rmsprop_op

// With AVX-512 the half-precision update needs no float buffers at all: the
// formula of rmsprop_math.h runs on vectors of 16 floats, widened from and
// narrowed to half precision in registers. Widening through L1 blocks
// (above) cost as much as the arithmetic; this halves the time per element.
typedef float FloatLanes __attribute__((vector_size(64)));
typedef uint32_t UintLanes __attribute__((vector_size(64)));

namespace rmsprop_math {
template <>
RMSPROP_AVX512_TARGET inline FloatLanes Sqrt<FloatLanes>(FloatLanes x) {
  return (FloatLanes)_mm512_maskz_sqrt_ps(0xffff, (__m512)x);
}
}  // namespace rmsprop_math

namespace rmsprop_op {
namespace {

// Loads of 16 elements (the lanes in `m`; the others read as 0 and are not
// touched in memory) as floats.
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
LoadLanes(const Eigen::half* p, __mmask16 m) {
  return (FloatLanes)_mm512_maskz_cvtph_ps(m, _mm256_maskz_loadu_epi16(m, p));
}
// bfloat16 is the upper half of a float. (A word permutation instead of
// the shifts measured four times slower.)
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
LoadLanes(const Eigen::bfloat16* p, __mmask16 m) {
  const UintLanes wide =
      (UintLanes)_mm512_maskz_cvtepu16_epi32(m, _mm256_maskz_loadu_epi16(m, p));
  return (FloatLanes)(wide << 16);
}
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
LoadLanes(const float* p, __mmask16 m) {
  return (FloatLanes)_mm512_maskz_loadu_ps(m, p);
}

// Stores rounding to nearest even, as the scalar conversions do; bfloat16
// NaNs stay quiet NaNs of the same sign (the Narrow above, in lanes).
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline void StoreLanes(
    Eigen::half* p, __mmask16 m, FloatLanes x) {
  _mm256_mask_storeu_epi16(p, m, _mm512_maskz_cvtps_ph(m, (__m512)x, _MM_FROUND_TO_NEAREST_INT));
}
RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline void StoreLanes(
    Eigen::bfloat16* p, __mmask16 m, FloatLanes x) {
  const UintLanes bits = (UintLanes)x;
  const UintLanes high = bits >> 16;
  __m512i narrowed = (__m512i)((bits + 0x7fffu + (high & 1u)) >> 16);
  const __mmask16 is_nan = _mm512_cmp_ps_mask((__m512)x, (__m512)x, _CMP_UNORD_Q);
  if (__builtin_expect(is_nan != 0, 0)) {  // rare: skip the blend otherwise
    const UintLanes quiet = (high | 0x40u) & 0xffc0u;
    narrowed = _mm512_mask_blend_epi32(is_nan, narrowed, (__m512i)quiet);
  }
  _mm256_mask_storeu_epi16(p, m, _mm512_maskz_cvtepi32_epi16(m, narrowed));
}

RMSPROP_AVX512_TARGET __attribute__((always_inline)) inline FloatLanes
Broadcast(float x) {
  return (FloatLanes)_mm512_set1_ps(x);
}

// flatten: the formula's generic code calls this file's AVX-512 Sqrt, which
// GCC inlines only into AVX-512 code; without it every 16 lanes cost a call.
template <typename T, typename G, bool kCentered, bool kMomentum>
RMSPROP_AVX512_TARGET __attribute__((flatten)) inline void UpdateLanes(
    const SlotPointers<T>& slots, const G* grad, int64_t begin, int64_t end,
    const HyperOf<T>& h) {
  const rmsprop_math::Hyper<FloatLanes> lanes_h = {
      Broadcast(h.lr),       Broadcast(h.rho),
      Broadcast(h.one_minus_rho), Broadcast(h.momentum),
      Broadcast(h.epsilon_in_sqrt), Broadcast(h.epsilon_after_sqrt)};
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 m = end - i >= 16 ? __mmask16(0xffff)
                                      : __mmask16((1u << (end - i)) - 1);
    const FloatLanes g = LoadLanes(grad + i, m);
    FloatLanes ms = LoadLanes(slots.ms + i, m);
    FloatLanes mg = kCentered ? LoadLanes(slots.mg + i, m) : FloatLanes{};
    FloatLanes mom = kMomentum ? LoadLanes(slots.mom + i, m) : FloatLanes{};
    const FloatLanes delta =
        rmsprop_math::UpdateElement<kCentered, kMomentum, FloatLanes>(
            g, ms, mg, mom, lanes_h);
    StoreLanes(slots.var + i, m, LoadLanes(slots.var + i, m) - delta);
    StoreLanes(slots.ms + i, m, ms);
    if (kCentered) StoreLanes(slots.mg + i, m, mg);
    if (kMomentum) StoreLanes(slots.mom + i, m, mom);
  }
}

#define RMSPROP_DEFINE_RANGE_VARIANT(NAME, TARGET, HALF_PRECISION_LOOP)    \
  template <typename T, typename G, bool kCentered, bool kMomentum>       \
  TARGET void NAME(const SlotPointers<T>& slots, const G* grad,           \
                   int64_t begin, int64_t end, const HyperOf<T>& h) {     \
    if constexpr (kIsHalfPrecision<T>) {                                  \
      HALF_PRECISION_LOOP<T, G, kCentered, kMomentum>(slots, grad, begin, \
                                                      end, h);            \
    } else {                                                              \
      UpdateRangeBody<T, G, kCentered, kMomentum>(slots, grad, begin,     \
                                                  end, h);                \
    }                                                                     \
  }

RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeAvx512, RMSPROP_AVX512_TARGET, UpdateLanes)
RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeAvx2, RMSPROP_AVX2_TARGET, UpdateWidened)
RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeBaseline, , UpdateRangeBody)
#undef RMSPROP_DEFINE_RANGE_VARIANT

enum class Isa { kBaseline, kAvx2, kAvx512 };

Isa DetectIsa() {
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

const Isa kIsa = DetectIsa();

template <typename T, typename G, bool kCentered, bool kMomentum>
UpdateRangeFn<T, G> SelectForIsa() {
  switch (kIsa) {
    case Isa::kAvx512:
      return &UpdateRangeAvx512<T, G, kCentered, kMomentum>;
    case Isa::kAvx2:
      return &UpdateRangeAvx2<T, G, kCentered, kMomentum>;
    default:
      return &UpdateRangeBaseline<T, G, kCentered, kMomentum>;
  }
}

// The loop for this variant of the update on this processor.
template <typename T, typename G>
UpdateRangeFn<T, G> SelectUpdateRange(bool centered, bool momentum) {
  if (centered) {
    return momentum ? SelectForIsa<T, G, true, true>()
                    : SelectForIsa<T, G, true, false>();
  }
  return momentum ? SelectForIsa<T, G, false, true>()
                  : SelectForIsa<T, G, false, false>();
}

// Bytes read and written per element, for the thread pool's cost model.
template <typename T>
Eigen::TensorOpCost ElementCost(const SlotPointers<T>& slots) {
  const int slots_written = 2 + (slots.mg ? 1 : 0) + (slots.mom ? 1 : 0);
  return Eigen::TensorOpCost(sizeof(T) * (slots_written + 1),
                             sizeof(T) * slots_written,
                             /*compute_cycles=*/16);
}

}  // namespace

namespace functor {

template <typename T>
struct DenseApplyRMSProp<CPUDevice, T> {
  void operator()(const CPUDevice& d, const DenseUpdate<T>* updates,
                  int num_updates, const HyperOf<T>& h) {
    const SlotPointers<T>& first = updates[0].slots;
    const UpdateRangeFn<T, T> update_range =
        SelectUpdateRange<T, T>(first.mg != nullptr, first.mom != nullptr);
    if (num_updates == 1) {
      const DenseUpdate<T> u = updates[0];
      d.parallelFor(u.size, ElementCost(u.slots),
                    [&](Eigen::Index begin, Eigen::Index end) {
                      update_range(u.slots, u.grad, begin, end, h);
                    });
      return;
    }
    // Many variables: shard the concatenation of all their elements, so that
    // small variables share a thread and large ones are split.
    std::vector<int64_t> starts(num_updates + 1, 0);
    for (int i = 0; i < num_updates; ++i) {
      starts[i + 1] = starts[i] + updates[i].size;
    }
    d.parallelFor(starts.back(), ElementCost(first),
                  [&](Eigen::Index begin, Eigen::Index end) {
                    int i = static_cast<int>(
                        std::upper_bound(starts.begin(), starts.end(), begin) -
                        starts.begin() - 1);
                    for (; i < num_updates && starts[i] < end; ++i) {
                      const int64_t lo = std::max<int64_t>(begin, starts[i]);
                      const int64_t hi = std::min<int64_t>(end, starts[i + 1]);
                      update_range(updates[i].slots, updates[i].grad,
                                   lo - starts[i], hi - starts[i], h);
                    }
                  });
  }
};

// Index positions grouped by row: order[starts[g] .. starts[g+1]) are the
// positions naming rows[g], in increasing position order.
struct RowGroups {
  std::vector<int64_t> rows;
  std::vector<int64_t> starts;
  std::vector<uint32_t> order;
};

// Stable LSD radix sort of (row, position) pairs by row: linear time, and
// stability keeps equal rows in position order, which makes duplicate sums
// deterministic. Digits of at most 8 bits (as few passes as the row count
// needs): with wider digits the scatter writes to more buckets than L1 holds
// lines for, which measured twice as slow at a few thousand indices.
template <typename Tindex>
RowGroups GroupPositionsByRow(const Tindex* indices, int64_t n,
                              int64_t num_rows) {
  constexpr int kMaxDigitBits = 8;
  const int row_bits =
      num_rows <= 1 ? 0 : 64 - __builtin_clzll(static_cast<uint64_t>(num_rows - 1));
  const int passes = (row_bits + kMaxDigitBits - 1) / kMaxDigitBits;
  const int digit_bits = passes == 0 ? 0 : (row_bits + passes - 1) / passes;
  const uint32_t buckets = 1u << digit_bits;
  // Row in the upper 32 bits, position in the lower (callers ensure both fit).
  std::unique_ptr<uint64_t[]> pairs(new uint64_t[n]);
  std::unique_ptr<uint64_t[]> scratch(new uint64_t[n]);
  std::vector<uint32_t> count(static_cast<size_t>(passes) * buckets, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t row = static_cast<uint64_t>(indices[i]);
    pairs[i] = (row << 32) | static_cast<uint64_t>(i);
    for (int p = 0; p < passes; ++p) {
      ++count[p * buckets + ((row >> (p * digit_bits)) & (buckets - 1))];
    }
  }
  for (int p = 0; p < passes; ++p) {
    uint32_t* offset = count.data() + p * buckets;
    const int shift = 32 + p * digit_bits;
    // Every row has the same digit here: this pass would keep the order.
    if (offset[(pairs[0] >> shift) & (buckets - 1)] == n) continue;
    uint32_t total = 0;
    for (uint32_t b = 0; b < buckets; ++b) {
      const uint32_t here = offset[b];
      offset[b] = total;
      total += here;
    }
    for (int64_t i = 0; i < n; ++i) {
      scratch[offset[(pairs[i] >> shift) & (buckets - 1)]++] = pairs[i];
    }
    pairs.swap(scratch);
  }
  RowGroups groups;
  groups.order.resize(n);
  groups.rows.reserve(n);
  groups.starts.reserve(n + 1);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t row = static_cast<int64_t>(pairs[k] >> 32);
    groups.order[k] = static_cast<uint32_t>(pairs[k]);
    if (k == 0 || row != groups.rows.back()) {
      groups.starts.push_back(k);
      groups.rows.push_back(row);
    }
  }
  groups.starts.push_back(n);
  return groups;
}

// Rows are scattered over tables far larger than the caches; asking for the
// rows a few groups ahead hides most of the memory latency.
template <typename T>
inline void PrefetchRow(const SlotPointers<T>& slots, int64_t offset,
                        int64_t row_bytes) {
  for (int64_t b = 0; b < row_bytes; b += 64) {
    const char* at = reinterpret_cast<const char*>(slots.var + offset) + b;
    __builtin_prefetch(at, 1);
    __builtin_prefetch(reinterpret_cast<const char*>(slots.ms + offset) + b, 1);
    if (slots.mg) __builtin_prefetch(reinterpret_cast<const char*>(slots.mg + offset) + b, 1);
    if (slots.mom) __builtin_prefetch(reinterpret_cast<const char*>(slots.mom + offset) + b, 1);
  }
}

template <typename T, typename Tindex>
struct SparseApplyRMSProp<CPUDevice, T, Tindex> {
  int64_t operator()(const CPUDevice& d, const SlotPointers<T>& slots,
                     const T* grad, const Tindex* indices, int64_t num_indices,
                     int64_t num_rows, int64_t row_size, const HyperOf<T>& h) {
    for (int64_t i = 0; i < num_indices; ++i) {
      if (indices[i] < 0 || indices[i] >= num_rows) return i;
    }
    if (num_indices == 0 || row_size == 0) return -1;
    if (num_rows > (int64_t{1} << 32) || num_indices >= (int64_t{1} << 32)) {
      return SortedFallback(d, slots, grad, indices, num_indices, row_size, h);
    }
    const RowGroups groups = GroupPositionsByRow(indices, num_indices, num_rows);
    ApplyGroups(d, slots, grad, groups.rows, groups.starts,
                [&](int64_t k) { return static_cast<int64_t>(groups.order[k]); },
                row_size, h);
    return -1;
  }

 private:
  using C = ComputeType<T>;
  static constexpr int kPrefetchDistance = 8;

  // One update per group: the gradient row itself, or the sum of the rows of
  // its duplicate positions in position order.
  template <typename PositionAt>
  static void ApplyGroups(const CPUDevice& d, const SlotPointers<T>& slots,
                          const T* grad, const std::vector<int64_t>& rows,
                          const std::vector<int64_t>& starts,
                          PositionAt position_at, int64_t row_size,
                          const HyperOf<T>& h) {
    const bool centered = slots.mg != nullptr;
    const bool momentum = slots.mom != nullptr;
    const UpdateRangeFn<T, T> update_row = SelectUpdateRange<T, T>(centered, momentum);
    const UpdateRangeFn<T, C> update_summed_row =
        SelectUpdateRange<T, C>(centered, momentum);
    const int64_t num_groups = static_cast<int64_t>(rows.size());
    const int64_t row_bytes = row_size * static_cast<int64_t>(sizeof(T));
    const Eigen::TensorOpCost row_cost =
        ElementCost(slots) * static_cast<double>(row_size);
    d.parallelFor(num_groups, row_cost, [&](Eigen::Index first, Eigen::Index last) {
      std::vector<C> summed;
      for (Eigen::Index g = first; g < last; ++g) {
        if (g + kPrefetchDistance < last) {
          PrefetchRow(slots, rows[g + kPrefetchDistance] * row_size, row_bytes);
        }
        const SlotPointers<T> row_slots = slots.At(rows[g] * row_size);
        const T* first_grad = grad + position_at(starts[g]) * row_size;
        if (starts[g + 1] - starts[g] == 1) {
          update_row(row_slots, first_grad, 0, row_size, h);
          continue;
        }
        summed.resize(row_size);
        for (int64_t j = 0; j < row_size; ++j) summed[j] = static_cast<C>(first_grad[j]);
        for (int64_t k = starts[g] + 1; k < starts[g + 1]; ++k) {
          const T* g_row = grad + position_at(k) * row_size;
          for (int64_t j = 0; j < row_size; ++j) summed[j] += static_cast<C>(g_row[j]);
        }
        update_summed_row(row_slots, summed.data(), 0, row_size, h);
      }
    });
  }

  // Tables of more than 2^32 rows: a comparison sort of (row, position).
  static int64_t SortedFallback(const CPUDevice& d, const SlotPointers<T>& slots,
                                const T* grad, const Tindex* indices,
                                int64_t n, int64_t row_size, const HyperOf<T>& h) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [indices](int64_t a, int64_t b) {
      return indices[a] < indices[b];
    });
    std::vector<int64_t> rows, starts;
    for (int64_t k = 0; k < n; ++k) {
      if (k == 0 || indices[order[k]] != indices[order[k - 1]]) {
        starts.push_back(k);
        rows.push_back(static_cast<int64_t>(indices[order[k]]));
      }
    }
    starts.push_back(n);
    ApplyGroups(d, slots, grad, rows, starts, [&](int64_t k) { return order[k]; },
                row_size, h);
    return -1;
  }
};

}  // namespace functor

#define RMSPROP_REGISTER_CPU(T) \
  RMSPROP_REGISTER_KERNELS(CPUDevice, ::tensorflow::DEVICE_CPU, T);

RMSPROP_REGISTER_CPU(Eigen::half)
RMSPROP_REGISTER_CPU(Eigen::bfloat16)
RMSPROP_REGISTER_CPU(float)
RMSPROP_REGISTER_CPU(double)
RMSPROP_REGISTER_CPU(::tensorflow::complex64)
RMSPROP_REGISTER_CPU(::tensorflow::complex128)
#undef RMSPROP_REGISTER_CPU

}  // namespace rmsprop_op
