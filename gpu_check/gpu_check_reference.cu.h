// The checker's hyperparameter sets, the CPU reference of one element and
// the bit-for-bit comparison of results. Included by gpu_check.cu only,
// inside its anonymous namespace, after gpu_check_support.cu.h.
#ifndef RMSPROP_OP_GPU_CHECK_REFERENCE_CU_H_
#define RMSPROP_OP_GPU_CHECK_REFERENCE_CU_H_

// Hyperparameter sets, epsilon's placement independent of momentum (with no
// momentum slot, momentum is 0).
struct HyperSet {
  const char* name;
  double lr, rho, momentum, epsilon;
  bool epsilon_after_sqrt;
};
constexpr HyperSet kHyperSets[] = {
    {"defaults", 0.001, 0.9, 0.9, 1e-7, false},
    {"epsilon after the root", 0.01, 0.9, 0.9, 1e-7, true},
    {"rho 0.99", 0.1, 0.99, 0.5, 1e-3, false},
    {"rho 0, epsilon 0", 1e-4, 0.0, 0.99, 0.0, true},
    {"rho 1, lr 0.5", 0.5, 1.0, 0.3, 1e-7, false},
};

template <typename T>
HyperOf<T> MakeHyper(const HyperSet& s, bool momentum) {
  using R = decltype(HyperOf<T>{}.lr);
  rmsprop_math::Hyper<double> h = {};
  h.lr = s.lr;
  h.rho = s.rho;
  h.momentum = momentum ? s.momentum : 0.0;
  h.epsilon = s.epsilon;
  rmsprop_math::Derive(h, s.epsilon_after_sqrt);
  return rmsprop_math::ConvertAll<R>(h, [](double v) { return static_cast<R>(v); });
}

// The timings' hyperparameters.
template <typename T>
HyperOf<T> MakeHyper(bool momentum) {
  return MakeHyper<T>(kHyperSets[0], momentum);
}

// The CPU reference: element i of the update with gradient g, as the CPU
// kernels compute it.
template <typename T, typename V>
void ReferenceElement(Slots<T>& s, int64_t i, ComputeType<T> g,
                      const HyperOf<T>& h) {
  using C = ComputeType<T>;
  C ms = gpu::ToCompute(s.ms[i]);
  C mg = V::kCentered ? gpu::ToCompute(s.mg[i]) : C(0);
  C mom = V::kMomentum ? gpu::ToCompute(s.mom[i]) : C(0);
  C var = gpu::ToCompute(s.var[i]);
  C no_ema = C(0);
  rmsprop_math::UpdateElement<V, C>(g, var, ms, mg, mom, no_ema, h, ExtrasOf<T>{});
  s.var[i] = gpu::FromCompute<T>(var);
  s.ms[i] = gpu::FromCompute<T>(ms);
  if (V::kCentered) s.mg[i] = gpu::FromCompute<T>(mg);
  if (V::kMomentum) s.mom[i] = gpu::FromCompute<T>(mom);
}

template <typename T>
using ReferenceFn = void (*)(Slots<T>&, int64_t, ComputeType<T>,
                             const HyperOf<T>&);

template <typename T>
ReferenceFn<T> SelectReference(bool centered, bool momentum) {
  rmsprop_math::VariantChoice choice;
  choice.centered = centered;
  choice.momentum = momentum;
  return rmsprop_math::DispatchVariant<rmsprop_math::ExtrasDispatch::kNone>(choice, [](auto variant) -> ReferenceFn<T> {
    return &ReferenceElement<T, decltype(variant)>;
  });
}

template <typename C>
std::string Format(C x) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", static_cast<double>(x));
  return buf;
}
template <typename R>
std::string Format(rmsprop_math::Complex<R> x) {
  char buf[80];
  std::snprintf(buf, sizeof(buf), "(%.17g, %.17g)", static_cast<double>(x.re),
                static_cast<double>(x.im));
  return buf;
}

// Counts elements whose bits differ (NaNs too: both devices store the one
// canonical NaN) and describes the first.
template <typename T>
int64_t CountMismatches(const std::vector<T>& got, const std::vector<T>& want,
                        const char* name, std::string* first) {
  int64_t count = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const auto a = gpu::ToCompute(got[i]);
    const auto b = gpu::ToCompute(want[i]);
    if (std::memcmp(&got[i], &want[i], sizeof(T)) == 0) continue;
    if (count++ == 0) {
      *first = std::string(name) + "[" + std::to_string(i) + "]: got " +
               Format(a) + ", want " + Format(b);
    }
  }
  return count;
}

template <typename T>
int64_t CompareSlots(const Slots<T>& got, const Slots<T>& want,
                     std::string* first) {
  return CountMismatches(got.var, want.var, "var", first) +
         CountMismatches(got.ms, want.ms, "ms", first) +
         CountMismatches(got.mg, want.mg, "mg", first) +
         CountMismatches(got.mom, want.mom, "mom", first);
}

struct Tally {
  int passed = 0;
  int failed = 0;

  void Record(bool ok, const std::string& what, const std::string& detail) {
    if (ok) {
      ++passed;
    } else {
      ++failed;
      std::printf("FAIL %s: %s\n", what.c_str(), detail.c_str());
    }
  }
};

#endif  // RMSPROP_OP_GPU_CHECK_REFERENCE_CU_H_
