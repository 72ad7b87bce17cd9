// What an element update costs, for the thread pool's sharding.
#ifndef RMSPROP_OP_CC_KERNELS_CPU_COST_MODEL_H_
#define RMSPROP_OP_CC_KERNELS_CPU_COST_MODEL_H_

#include <complex>

#include "rmsprop_op/cc/kernels/common/functors.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace rmsprop_op {
namespace cpu {

// Cycles per element of one update on one core (the centered update with
// momentum, the costliest, as measured: benchmarks/README.md, "Kernel
// notes"), for the thread pool's cost model. Eigen gives an update a second
// thread once it costs more than 200,000 cycles, so a float32 update is
// split only from about 1e5 elements, where the work outweighs waking a
// thread. A dtype not listed costs as float32.
template <typename T>
constexpr double kCyclesPerElement = 2.0;
template <>
constexpr double kCyclesPerElement<double> = 4.5;
template <>
constexpr double kCyclesPerElement<Eigen::half> = 4.0;
template <>
constexpr double kCyclesPerElement<Eigen::bfloat16> = 7.5;
template <>
constexpr double kCyclesPerElement<std::complex<float>> = 55.0;
template <>
constexpr double kCyclesPerElement<std::complex<double>> = 70.0;

template <typename T>
Eigen::TensorOpCost ElementCost(const SlotPointers<T>&) {
  return Eigen::TensorOpCost(0, 0, kCyclesPerElement<T>);
}

// The cost of an element of a sparse row: rows are scattered over tables
// larger than the caches, so every byte counts as a load from memory.
template <typename T>
Eigen::TensorOpCost ScatteredElementCost(const SlotPointers<T>& slots) {
  const int slots_written = 2 + (slots.mg ? 1 : 0) + (slots.mom ? 1 : 0);
  return Eigen::TensorOpCost(sizeof(T) * (slots_written + 1),
                             sizeof(T) * slots_written,
                             /*compute_cycles=*/16);
}

}  // namespace cpu
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_CPU_COST_MODEL_H_
