// What the standalone GPU checker works with: CUDA error checks, device
// buffers, scratch memory and random test data. Included by gpu_check.cu
// only (one translation unit), inside its anonymous namespace.
#ifndef RMSPROP_OP_GPU_CHECK_SUPPORT_CU_H_
#define RMSPROP_OP_GPU_CHECK_SUPPORT_CU_H_

#define CHECK_CUDA(expr)                                                  \
  do {                                                                    \
    const cudaError_t err_ = (expr);                                      \
    if (err_ != cudaSuccess) {                                            \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,  \
                   #expr, cudaGetErrorString(err_));                      \
      std::exit(1);                                                       \
    }                                                                     \
  } while (0)

template <typename T>
const char* TypeName();
template <>
const char* TypeName<float>() { return "float32"; }
template <>
const char* TypeName<double>() { return "float64"; }
template <>
const char* TypeName<__half>() { return "float16"; }
template <>
const char* TypeName<__nv_bfloat16>() { return "bfloat16"; }
template <>
const char* TypeName<rmsprop_math::Complex<float>>() { return "complex64"; }
template <>
const char* TypeName<rmsprop_math::Complex<double>>() { return "complex128"; }
template <>
const char* TypeName<int32_t>() { return "int32"; }
template <>
const char* TypeName<int64_t>() { return "int64"; }

const char* VariantName(bool centered, bool momentum) {
  if (centered) return momentum ? "centered+mom" : "centered";
  return momentum ? "plain+mom" : "plain";
}

// Scratch memory from the stream-ordered allocator, as the op library gets
// it from TensorFlow's.
class AsyncScratch : public gpu::ScratchAllocator {
 public:
  explicit AsyncScratch(cudaStream_t stream) : stream_(stream) {}
  void* Allocate(size_t bytes) override {
    void* p = nullptr;
    return cudaMallocAsync(&p, bytes, stream_) == cudaSuccess ? p : nullptr;
  }
  void Free(void* buffer) override {
    CHECK_CUDA(cudaFreeAsync(buffer, stream_));
  }

 private:
  cudaStream_t stream_;
};

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    CHECK_CUDA(cudaMalloc(&ptr_, std::max<size_t>(n, 1) * sizeof(T)));
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  void Upload(const std::vector<T>& host) {
    CHECK_CUDA(cudaMemcpy(ptr_, host.data(), n_ * sizeof(T),
                          cudaMemcpyHostToDevice));
  }
  std::vector<T> Download() const {
    std::vector<T> host(n_);
    CHECK_CUDA(cudaMemcpy(host.data(), ptr_, n_ * sizeof(T),
                          cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t n_;
};

template <typename T>
T RandomValue(std::mt19937_64& rng, std::uniform_real_distribution<double>& dist) {
  return gpu::FromCompute<T>(static_cast<ComputeType<T>>(dist(rng)));
}
template <>
rmsprop_math::Complex<float> RandomValue(
    std::mt19937_64& rng, std::uniform_real_distribution<double>& dist) {
  const float re = static_cast<float>(dist(rng));
  return {re, static_cast<float>(dist(rng))};
}
template <>
rmsprop_math::Complex<double> RandomValue(
    std::mt19937_64& rng, std::uniform_real_distribution<double>& dist) {
  const double re = dist(rng);
  return {re, dist(rng)};
}

// Values where devices are most likely to differ: zeros of both signs,
// subnormals (of float, of half precision, of the compute type), the
// smallest normal, infinities, NaN and huge values.
template <typename T>
T SpecialValue(std::mt19937_64& rng) {
  using R = typename RealOf<ComputeType<T>>::type;
  using L = std::numeric_limits<R>;
  const double specials[] = {0.0, -0.0, double(L::denorm_min()), double(L::min()) / 2,
                             double(L::min()), -double(L::min()) / 3, 1e-40, 5e-8,
                             HUGE_VAL, -HUGE_VAL, std::nan(""), double(L::max()) / 4,
                             -double(L::max()) / 4};
  std::uniform_int_distribution<int> pick(0, sizeof(specials) / sizeof(specials[0]) - 1);
  const double x = specials[pick(rng)];
  if constexpr (std::is_same_v<T, rmsprop_math::Complex<float>> ||
                std::is_same_v<T, rmsprop_math::Complex<double>>) {
    return (rng() & 1) ? T{R(x), R(0.5)} : T{R(-0.25), R(x)};
  } else {
    return gpu::FromCompute<T>(static_cast<ComputeType<T>>(x));
  }
}

// n values from [lo, hi); with `special`, one in six is a SpecialValue.
template <typename T>
std::vector<T> RandomVector(std::mt19937_64& rng, size_t n, double lo,
                            double hi, bool special = false) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = special && rng() % 6 == 0 ? SpecialValue<T>(rng) : RandomValue<T>(rng, dist);
  return v;
}

// The variables and slots of one check, on the host and the device. Without
// special values the ranges keep ms - mg^2 positive for real types, so no
// result is NaN (complex ones have a root everywhere); with them NaN and Inf
// results are checked too.
template <typename T>
struct Slots {
  std::vector<T> var, ms, mg, mom;

  static Slots Random(std::mt19937_64& rng, size_t n, bool special = false) {
    return {RandomVector<T>(rng, n, -1.0, 1.0, special),
            RandomVector<T>(rng, n, 0.1, 1.0, special),
            RandomVector<T>(rng, n, -0.1, 0.1, special),
            RandomVector<T>(rng, n, -0.1, 0.1, special)};
  }
};

template <typename T>
struct DeviceSlots {
  DeviceBuffer<T> var, ms, mg, mom;

  explicit DeviceSlots(size_t n) : var(n), ms(n), mg(n), mom(n) {}
  void Upload(const Slots<T>& s) {
    var.Upload(s.var);
    ms.Upload(s.ms);
    mg.Upload(s.mg);
    mom.Upload(s.mom);
  }
  Slots<T> Download() const {
    return {var.Download(), ms.Download(), mg.Download(), mom.Download()};
  }
  SlotPointers<T> Pointers(bool centered, bool momentum, int64_t offset) const {
    return {var.get() + offset, ms.get() + offset,
            centered ? mg.get() + offset : nullptr,
            momentum ? mom.get() + offset : nullptr};
  }
};


#endif  // RMSPROP_OP_GPU_CHECK_SUPPORT_CU_H_
