// The variable dtypes of the ops, listed once, and what each one computes in.
// No TensorFlow here: the CUDA half of the GPU library includes it.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_DTYPES_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_DTYPES_H_

#include <complex>
#include <type_traits>

#include "rmsprop_op/cc/kernels/common/rmsprop_math.h"

namespace Eigen {
struct half;
struct bfloat16;
}  // namespace Eigen

// The dtypes, once: X(M, C++ type, TensorFlow's name, REAL or COMPLEX). The
// kernel registrations, the GPU functors and the ops' `T` attr all read this
// list; the fused extras and the squared norms take its REAL entries. (M is
// passed through for the FOR_EACH macros below.)
#define RMSPROP_DTYPES(X, M)                     \
  X(M, Eigen::half, half, REAL)                  \
  X(M, Eigen::bfloat16, bfloat16, REAL)          \
  X(M, float, float, REAL)                       \
  X(M, double, double, REAL)                     \
  X(M, std::complex<float>, complex64, COMPLEX)  \
  X(M, std::complex<double>, complex128, COMPLEX)

// M(type) for every dtype, and for every real one.
#define RMSPROP_DTYPE_TYPE(M, type, name, kind) M(type)
#define RMSPROP_FOR_EACH_DTYPE(M) RMSPROP_DTYPES(RMSPROP_DTYPE_TYPE, M)
#define RMSPROP_DTYPE_IF_REAL_REAL(M, type) M(type)
#define RMSPROP_DTYPE_IF_REAL_COMPLEX(M, type)
#define RMSPROP_DTYPE_REAL_TYPE(M, type, name, kind) RMSPROP_DTYPE_IF_REAL_##kind(M, type)
#define RMSPROP_FOR_EACH_REAL_DTYPE(M) RMSPROP_DTYPES(RMSPROP_DTYPE_REAL_TYPE, M)

namespace rmsprop_op {

// Half-precision variables are updated in float and rounded once; complex
// ones in rmsprop_math::Complex, whose bits are those of std::complex.
template <typename T>
struct ComputeTypeOf {
  using type = float;
};
template <>
struct ComputeTypeOf<double> {
  using type = double;
};
template <typename R>
struct ComputeTypeOf<std::complex<R>> {
  using type = rmsprop_math::Complex<R>;
};
template <typename R>
struct ComputeTypeOf<rmsprop_math::Complex<R>> {
  using type = rmsprop_math::Complex<R>;
};
template <typename T>
using ComputeType = typename ComputeTypeOf<T>::type;

// The real type of a compute type: the type of the hyperparameters.
template <typename C>
struct RealOf {
  using type = C;
};
template <typename R>
struct RealOf<rmsprop_math::Complex<R>> {
  using type = R;
};

// Whether a (storage or compute) type is real: the fused extras and the
// squared norms take only those.
template <typename T>
constexpr bool kIsReal = std::is_same<ComputeType<T>, typename RealOf<ComputeType<T>>::type>::value;

template <typename T>
using HyperOf = rmsprop_math::Hyper<typename RealOf<ComputeType<T>>::type>;
template <typename T>
using ExtrasOf = rmsprop_math::Extras<typename RealOf<ComputeType<T>>::type>;

}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_DTYPES_H_
