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
#include <numeric>
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

#define RMSPROP_DEFINE_RANGE_VARIANT(NAME, TARGET)                        \
  template <typename T, typename G, bool kCentered, bool kMomentum>       \
  TARGET void NAME(const SlotPointers<T>& slots, const G* grad,           \
                   int64_t begin, int64_t end, const HyperOf<T>& h) {     \
    UpdateRangeBody<T, G, kCentered, kMomentum>(slots, grad, begin, end,  \
                                                h);                       \
  }

RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeAvx512,
                             __attribute__((target(
                                 "avx512f,avx512bw,avx512vl,avx512dq,avx2,"
                                 "f16c,fma"))))
RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeAvx2,
                             __attribute__((target("avx2,f16c,fma"))))
RMSPROP_DEFINE_RANGE_VARIANT(UpdateRangeBaseline, )
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

template <typename T, typename Tindex>
struct SparseApplyRMSProp<CPUDevice, T, Tindex> {
  int64_t operator()(const CPUDevice& d, const SlotPointers<T>& slots,
                     const T* grad, const Tindex* indices, int64_t num_indices,
                     int64_t num_rows, int64_t row_size, const HyperOf<T>& h) {
    using C = ComputeType<T>;
    for (int64_t i = 0; i < num_indices; ++i) {
      if (indices[i] < 0 || indices[i] >= num_rows) return i;
    }
    if (num_indices == 0 || row_size == 0) return -1;

    // Positions sorted by (row, position): duplicates become neighbours and
    // are summed in position order, the same on every run.
    std::vector<int64_t> order = SortedPositions(indices, num_indices);
    std::vector<int64_t> group_starts;
    group_starts.reserve(num_indices + 1);
    for (int64_t k = 0; k < num_indices; ++k) {
      if (k == 0 || indices[order[k]] != indices[order[k - 1]]) {
        group_starts.push_back(k);
      }
    }
    group_starts.push_back(num_indices);
    const int64_t num_groups = static_cast<int64_t>(group_starts.size()) - 1;

    const bool centered = slots.mg != nullptr;
    const bool momentum = slots.mom != nullptr;
    const UpdateRangeFn<T, T> update_row = SelectUpdateRange<T, T>(centered, momentum);
    const UpdateRangeFn<T, C> update_summed_row =
        SelectUpdateRange<T, C>(centered, momentum);
    Eigen::TensorOpCost row_cost = ElementCost(slots) * static_cast<double>(row_size);
    d.parallelFor(
        num_groups, row_cost, [&](Eigen::Index first, Eigen::Index last) {
          std::vector<C> summed;
          for (Eigen::Index g = first; g < last; ++g) {
            const int64_t begin = group_starts[g];
            const int64_t end = group_starts[g + 1];
            const int64_t row = static_cast<int64_t>(indices[order[begin]]);
            const SlotPointers<T> row_slots = slots.At(row * row_size);
            const T* first_grad = grad + order[begin] * row_size;
            if (end - begin == 1) {
              update_row(row_slots, first_grad, 0, row_size, h);
              continue;
            }
            summed.resize(row_size);
            for (int64_t j = 0; j < row_size; ++j) {
              summed[j] = static_cast<C>(first_grad[j]);
            }
            for (int64_t k = begin + 1; k < end; ++k) {
              const T* g_row = grad + order[k] * row_size;
              for (int64_t j = 0; j < row_size; ++j) {
                summed[j] += static_cast<C>(g_row[j]);
              }
            }
            update_summed_row(row_slots, summed.data(), 0, row_size, h);
          }
        });
    return -1;
  }

 private:
  static std::vector<int64_t> SortedPositions(const Tindex* indices,
                                              int64_t n) {
    std::vector<int64_t> order(n);
    if (n < (int64_t{1} << 32)) {
      // Pack (row, position) into one 64-bit key when both fit in 32 bits:
      // sorting plain integers is several times faster than a comparator.
      bool packable = true;
      std::vector<uint64_t> keys(n);
      for (int64_t i = 0; i < n; ++i) {
        const uint64_t row = static_cast<uint64_t>(indices[i]);
        packable &= row < (uint64_t{1} << 32);
        keys[i] = (row << 32) | static_cast<uint64_t>(i);
      }
      if (packable) {
        std::sort(keys.begin(), keys.end());
        for (int64_t i = 0; i < n; ++i) {
          order[i] = static_cast<int64_t>(keys[i] & 0xffffffffu);
        }
        return order;
      }
    }
    std::iota(order.begin(), order.end(), int64_t{0});
    std::sort(order.begin(), order.end(), [indices](int64_t a, int64_t b) {
      return indices[a] < indices[b] || (indices[a] == indices[b] && a < b);
    });
    return order;
  }
};

}  // namespace functor

#define RMSPROP_REGISTER_CPU(T) \
  RMSPROP_REGISTER_KERNELS(CPUDevice, ::tensorflow::DEVICE_CPU, T);

RMSPROP_REGISTER_CPU(Eigen::half)
RMSPROP_REGISTER_CPU(Eigen::bfloat16)
RMSPROP_REGISTER_CPU(float)
RMSPROP_REGISTER_CPU(double)
#undef RMSPROP_REGISTER_CPU

}  // namespace rmsprop_op
