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

#include "rmsprop_op/cc/kernels/rmsprop_functors.h"
#include "rmsprop_op/cc/kernels/rmsprop_cuda_common.cu.h"
#include "rmsprop_op/cc/kernels/rmsprop_cuda_dense.cu.h"
#include "rmsprop_op/cc/kernels/rmsprop_cuda_sparse.cu.h"
#include "rmsprop_op/cc/kernels/rmsprop_math.h"

namespace {

namespace gpu = rmsprop_op::gpu;
using rmsprop_op::ComputeType;
using rmsprop_op::DenseUpdate;
using rmsprop_op::HyperOf;
using rmsprop_op::RealOf;
using rmsprop_op::SlotPointers;

#include "gpu_check/gpu_check_support.cu.h"

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
  return {static_cast<R>(s.lr), static_cast<R>(s.rho),
          static_cast<R>(1.0 - s.rho), static_cast<R>(momentum ? s.momentum : 0.0),
          static_cast<R>(s.epsilon_after_sqrt ? 0.0 : s.epsilon),
          static_cast<R>(s.epsilon_after_sqrt ? s.epsilon : 0.0)};
}

// The timings' hyperparameters.
template <typename T>
HyperOf<T> MakeHyper(bool momentum) {
  return MakeHyper<T>(kHyperSets[0], momentum);
}

// The CPU reference: element i of the update with gradient g, as the CPU
// kernels compute it.
template <typename T, bool kCentered, bool kMomentum>
void ReferenceElement(Slots<T>& s, int64_t i, ComputeType<T> g,
                      const HyperOf<T>& h) {
  using C = ComputeType<T>;
  C ms = gpu::ToCompute(s.ms[i]);
  C mg = kCentered ? gpu::ToCompute(s.mg[i]) : C(0);
  C mom = kMomentum ? gpu::ToCompute(s.mom[i]) : C(0);
  C var = gpu::ToCompute(s.var[i]);
  rmsprop_math::UpdateStored<kCentered, kMomentum, C>(g, var, ms, mg, mom, h);
  s.var[i] = gpu::FromCompute<T>(var);
  s.ms[i] = gpu::FromCompute<T>(ms);
  if (kCentered) s.mg[i] = gpu::FromCompute<T>(mg);
  if (kMomentum) s.mom[i] = gpu::FromCompute<T>(mom);
}

template <typename T>
using ReferenceFn = void (*)(Slots<T>&, int64_t, ComputeType<T>,
                             const HyperOf<T>&);

template <typename T>
ReferenceFn<T> SelectReference(bool centered, bool momentum) {
  if (centered) {
    return momentum ? &ReferenceElement<T, true, true>
                    : &ReferenceElement<T, true, false>;
  }
  return momentum ? &ReferenceElement<T, false, true>
                  : &ReferenceElement<T, false, false>;
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

// One call of the dense launcher with updates of `sizes` elements, each
// `misalign[i]` elements off a 16-element boundary (1: the scalar path). The
// whole buffers are compared, so a write outside an update also fails.
template <typename T>
void CheckDense(cudaStream_t stream, std::mt19937_64& rng, bool centered,
                bool momentum, const std::vector<int64_t>& sizes,
                const std::vector<int>& misalign, const char* label,
                Tally* tally, const HyperSet& hs = kHyperSets[0],
                bool special = false) {
  std::vector<int64_t> offsets;
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    offsets.push_back(total + misalign[i]);
    total = (offsets.back() + sizes[i] + 15) / 16 * 16;
  }
  Slots<T> want = Slots<T>::Random(rng, total, special);
  const std::vector<T> grad = RandomVector<T>(rng, total, -1.0, 1.0, special);
  DeviceSlots<T> d(total);
  d.Upload(want);
  DeviceBuffer<T> d_grad(total);
  d_grad.Upload(grad);

  const HyperOf<T> h = MakeHyper<T>(hs, momentum);
  std::vector<DenseUpdate<T>> updates;
  for (size_t i = 0; i < sizes.size(); ++i) {
    updates.push_back({d.Pointers(centered, momentum, offsets[i]),
                       d_grad.get() + offsets[i], sizes[i]});
  }
  CHECK_CUDA(gpu::LaunchDenseApply<T>(stream, updates.data(),
                                      static_cast<int>(updates.size()), h));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  const Slots<T> got = d.Download();

  const ReferenceFn<T> reference = SelectReference<T>(centered, momentum);
  for (size_t u = 0; u < sizes.size(); ++u) {
    for (int64_t i = offsets[u]; i < offsets[u] + sizes[u]; ++i) {
      reference(want, i, gpu::ToCompute(grad[i]), h);
    }
  }
  std::string first;
  const int64_t bad = CompareSlots(got, want, &first);
  char what[160];
  std::snprintf(what, sizeof(what), "dense %s %s %s, %s%s", TypeName<T>(),
                VariantName(centered, momentum), label, hs.name,
                special ? ", special values" : "");
  tally->Record(bad == 0, what,
                std::to_string(bad) + " elements differ; first " + first);
}

template <typename T>
void CheckDenseAll(cudaStream_t stream, std::mt19937_64& rng, Tally* tally) {
  // Many small updates: more than one launch's batch.
  std::vector<int64_t> many_sizes;
  std::vector<int> many_misalign;
  std::uniform_int_distribution<int64_t> size_dist(1, 300);
  for (int i = 0; i < 2 * gpu::kMaxDenseBatch + 44; ++i) {
    many_sizes.push_back(size_dist(rng));
    many_misalign.push_back(i % 7 == 3 ? 1 : 0);
  }
  for (int v = 0; v < 4; ++v) {
    const bool centered = v & 2, momentum = v & 1;
    for (const HyperSet& hs : kHyperSets) {
      for (bool special : {false, true}) {
        CheckDense<T>(stream, rng, centered, momentum,
                      {100003, 1, 7, 4096, 1027}, {0, 0, 1, 0, 1},
                      "mixed sizes", tally, hs, special);
      }
    }
    CheckDense<T>(stream, rng, centered, momentum, many_sizes, many_misalign,
                  "300 updates", tally);
  }
  // Several waves of the grid-stride loop on any GPU, aligned and not.
  CheckDense<T>(stream, rng, true, true, {3000017}, {0}, "3M elements", tally,
                kHyperSets[2], true);
  CheckDense<T>(stream, rng, false, false, {3000017}, {1}, "3M misaligned",
                tally, kHyperSets[1], true);
}

// The reference of a sparse update: duplicates summed in position order in
// the compute type, then applied once per row.
template <typename T, typename Tindex>
void ReferenceSparse(Slots<T>& s, const std::vector<T>& grad,
                     const std::vector<Tindex>& indices, int64_t row_size,
                     bool centered, bool momentum, const HyperOf<T>& h) {
  using C = ComputeType<T>;
  std::vector<int64_t> order(indices.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return indices[a] < indices[b];
  });
  const ReferenceFn<T> reference = SelectReference<T>(centered, momentum);
  std::vector<C> sum(row_size);
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() &&
           indices[order[end]] == indices[order[begin]]) {
      ++end;
    }
    for (int64_t j = 0; j < row_size; ++j) {
      sum[j] = gpu::ToCompute(grad[order[begin] * row_size + j]);
      for (size_t k = begin + 1; k < end; ++k) {
        sum[j] += gpu::ToCompute(grad[order[k] * row_size + j]);
      }
    }
    const int64_t row = static_cast<int64_t>(indices[order[begin]]);
    for (int64_t j = 0; j < row_size; ++j) {
      reference(s, row * row_size + j, sum[j], h);
    }
    begin = end;
  }
}

// Random indices into num_rows rows, unsorted, every third one the same
// row so that one run is long.
template <typename Tindex>
std::vector<Tindex> RandomIndices(std::mt19937_64& rng, int64_t n,
                                  int64_t num_rows) {
  std::uniform_int_distribution<int64_t> dist(0, num_rows - 1);
  const Tindex hot = static_cast<Tindex>(dist(rng));
  std::vector<Tindex> indices(n);
  for (int64_t i = 0; i < n; ++i) {
    indices[i] = i % 3 == 1 ? hot : static_cast<Tindex>(dist(rng));
  }
  return indices;
}

// One sparse update. With `bad_at` (positions set out of range) the launcher
// must report the first and leave every buffer as it was.
template <typename T, typename Tindex>
void CheckSparse(cudaStream_t stream, std::mt19937_64& rng, bool centered,
                 bool momentum, int64_t num_rows, int64_t row_size,
                 int64_t num_indices, const std::vector<int64_t>& bad_at,
                 Tally* tally, const HyperSet& hs = kHyperSets[0],
                 bool special = false) {
  const int64_t total = num_rows * row_size;
  Slots<T> want = Slots<T>::Random(rng, total, special);
  const std::vector<T> grad =
      RandomVector<T>(rng, num_indices * row_size, -1.0, 1.0, special);
  std::vector<Tindex> indices =
      RandomIndices<Tindex>(rng, num_indices, num_rows);
  for (size_t k = 0; k < bad_at.size(); ++k) {
    indices[bad_at[k]] =
        static_cast<Tindex>(k % 2 == 0 ? num_rows + static_cast<int64_t>(k)
                                       : -1 - static_cast<int64_t>(k));
  }
  const int64_t expected_bad =
      bad_at.empty() ? -1 : *std::min_element(bad_at.begin(), bad_at.end());

  DeviceSlots<T> d(total);
  d.Upload(want);
  DeviceBuffer<T> d_grad(grad.size());
  d_grad.Upload(grad);
  DeviceBuffer<Tindex> d_indices(indices.size());
  d_indices.Upload(indices);

  const HyperOf<T> h = MakeHyper<T>(hs, momentum);
  AsyncScratch scratch(stream);
  // The launcher only enqueues; the answer lands in pinned host memory.
  unsigned long long* first_bad = nullptr;
  CHECK_CUDA(cudaMallocHost(&first_bad, sizeof(*first_bad)));
  CHECK_CUDA(gpu::LaunchSparseApply<T>(
      stream, &scratch, d.Pointers(centered, momentum, 0), d_grad.get(),
      d_indices.get(), num_indices, num_rows, row_size, h, first_bad));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  const int64_t reported =
      *first_bad == gpu::kNoBadIndex ? -1 : static_cast<int64_t>(*first_bad);
  CHECK_CUDA(cudaFreeHost(first_bad));
  const Slots<T> got = d.Download();

  if (expected_bad < 0) {
    ReferenceSparse(want, grad, indices, row_size, centered, momentum, h);
  }
  std::string first;
  const int64_t differ = CompareSlots(got, want, &first);
  char what[200];
  std::snprintf(what, sizeof(what),
                "sparse %s %s indices %s, %" PRId64 " rows of %" PRId64
                ", %" PRId64 " indices, %s%s%s",
                TypeName<T>(), TypeName<Tindex>(),
                VariantName(centered, momentum), num_rows, row_size,
                num_indices, hs.name, special ? ", special values" : "",
                expected_bad >= 0 ? ", bad index" : "");
  if (reported != expected_bad) {
    tally->Record(false, what,
                  "reported bad position " + std::to_string(reported) +
                      ", want " + std::to_string(expected_bad));
  } else {
    tally->Record(differ == 0, what,
                  std::to_string(differ) + " elements differ; first " + first);
  }
}

template <typename T, typename Tindex>
void CheckSparseAll(cudaStream_t stream, std::mt19937_64& rng, Tally* tally) {
  for (int v = 0; v < 4; ++v) {
    const bool centered = v & 2, momentum = v & 1;
    // 37 columns take the scalar path, 64 the vector one.
    CheckSparse<T, Tindex>(stream, rng, centered, momentum, 300, 37, 2000, {},
                           tally);
    CheckSparse<T, Tindex>(stream, rng, centered, momentum, 300, 64, 2000, {},
                           tally);
  }
  for (const HyperSet& hs : kHyperSets) {
    CheckSparse<T, Tindex>(stream, rng, true, true, 300, 64, 2000, {}, tally,
                           hs, true);
    CheckSparse<T, Tindex>(stream, rng, false, false, 300, 37, 2000, {}, tally,
                           hs, true);
  }
  // Rows of many warp chunks, and of a few elements.
  CheckSparse<T, Tindex>(stream, rng, true, true, 40, 5000, 100, {}, tally,
                         kHyperSets[1], true);
  CheckSparse<T, Tindex>(stream, rng, false, true, 1000, 3, 5000, {}, tally,
                         kHyperSets[3], true);
  CheckSparse<T, Tindex>(stream, rng, true, true, 300, 64, 2000, {1500, 321},
                         tally);
  CheckSparse<T, Tindex>(stream, rng, false, false, 300, 37, 2000, {1999},
                         tally);
  CheckSparse<T, Tindex>(stream, rng, false, true, 300, 8, 1, {}, tally);
  CheckSparse<T, Tindex>(stream, rng, false, false, 300, 8, 0, {}, tally);
  // Without columns only the indices are checked.
  CheckSparse<T, Tindex>(stream, rng, false, false, 300, 0, 50, {}, tally);
  CheckSparse<T, Tindex>(stream, rng, false, false, 300, 0, 50, {7}, tally);
}

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
