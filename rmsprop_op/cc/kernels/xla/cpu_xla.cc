// The fused RMSProp ops inside XLA on the CPU: the XLA kernels registered
// for XLA's CPU device, and the Host handlers of their custom calls, which
// run the CPU functors on the thread pool XLA gives them. Built where
// tools/tf_build_flags.py finds what it needs in TensorFlow (RMSPROP_OP_XLA).

#include "rmsprop_op/cc/kernels/xla/registration_state.h"

// Whether XLA can compile our ops here (read by rmsprop_op._loader).
RMSPROP_DEFINE_XLA_STATE(rmsprop_op_xla_kernels, "XLA_CPU_JIT")

#ifdef RMSPROP_OP_XLA
#define EIGEN_USE_THREADS

#include <cstring>
#include <functional>
#include <utility>

#include "rmsprop_op/cc/kernels/cpu/cpu_functors.h"
#include "rmsprop_op/cc/kernels/xla/ffi_handlers.h"
#include "rmsprop_op/cc/kernels/xla/xla_op_kernels.h"
#include "tsl/platform/denormal.h"
#include "unsupported/Eigen/CXX11/ThreadPool"

namespace rmsprop_op {
namespace xla_kernels {
namespace {

// XLA's intra-op thread pool as Eigen's, for the functors' parallelFor. Every
// shard flushes subnormals, as TensorFlow's own CPU threads do, so that the
// update keeps the bits of the op kernels.
class FfiThreadPool : public Eigen::ThreadPoolInterface {
 public:
  explicit FfiThreadPool(ffi::ThreadPool pool) : pool_(std::move(pool)) {}
  void Schedule(std::function<void()> fn) override {
    pool_.Schedule([fn = std::move(fn)] {
      tsl::port::ScopedFlushDenormal flush;
      fn();
    });
  }
  int NumThreads() const override {
    return static_cast<int>(std::max<int64_t>(1, pool_.num_threads()));
  }
  int CurrentThreadId() const override { return -1; }

 private:
  mutable ffi::ThreadPool pool_;
};

struct HostBackend {
  using Device = Eigen::ThreadPoolDevice;
  explicit HostBackend(ffi::ThreadPool pool)
      : pool(std::move(pool)), eigen(&this->pool, this->pool.NumThreads()) {}
  const Device& device() const { return eigen; }
  void ReadDoubles(const void* src, double* out, size_t n) const {
    std::memcpy(out, src, n * sizeof(double));
  }
  void Copy(void* dst, const void* src, size_t bytes) const { std::memcpy(dst, src, bytes); }
  ffi::Error Failure() const { return ffi::Error::Success(); }

  FfiThreadPool pool;
  Eigen::ThreadPoolDevice eigen;
};

ffi::Error ApplyHost(ffi::ThreadPool pool, int64_t num_vars, int64_t centered, int64_t momentum,
                     int64_t ema, int64_t grouped, int64_t epsilon_after_sqrt,
                     int64_t apply_weight_decay, ffi::RemainingArgs args,
                     ffi::RemainingRets rets) {
  tsl::port::ScopedFlushDenormal flush;
  Buffers b;
  if (ffi::Error e = Decode(args, rets, &b); e.failure()) return e;
  HostBackend backend(std::move(pool));
  return Apply(backend,
               LayoutOf(num_vars, centered, momentum, ema, grouped, epsilon_after_sqrt,
                        apply_weight_decay),
               b);
}

ffi::Error SparseApplyHost(ffi::ThreadPool pool, int64_t num_vars, int64_t centered,
                           int64_t momentum, int64_t ema, int64_t grouped,
                           int64_t epsilon_after_sqrt, int64_t apply_weight_decay,
                           ffi::RemainingArgs args, ffi::RemainingRets rets) {
  tsl::port::ScopedFlushDenormal flush;
  Buffers b;
  if (ffi::Error e = Decode(args, rets, &b); e.failure()) return e;
  HostBackend backend(std::move(pool));
  const CallLayout layout = LayoutOf(num_vars, centered, momentum, ema, grouped,
                                     epsilon_after_sqrt, apply_weight_decay);
  return SparseApply(backend, layout, b, [&](const auto& call, const auto* indices) {
    using T = std::remove_pointer_t<decltype(call.grad)>;
    using Tindex = std::remove_const_t<std::remove_pointer_t<decltype(indices)>>;
    const int64_t bad = functor::SparseApplyRMSProp<CPUDevice, std::remove_const_t<T>, Tindex>()(
        backend.device(), call.slots, call.grad, indices, call.num_indices, call.num_rows,
        call.row_size, call.h);
    return ToFfiError(bad < 0 ? absl::OkStatus() : BadIndexError(bad, call.num_rows));
  });
}

ffi::Error SquaredNormsHost(ffi::ThreadPool pool, ffi::RemainingArgs args,
                            ffi::RemainingRets rets) {
  tsl::port::ScopedFlushDenormal flush;
  Buffers b;
  if (ffi::Error e = Decode(args, rets, &b); e.failure()) return e;
  HostBackend backend(std::move(pool));
  return SquaredNorms(backend, b);
}

XLA_FFI_DEFINE_HANDLER(kApplyHost, ApplyHost, BindUpdate(ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()));
XLA_FFI_DEFINE_HANDLER(kSparseApplyHost, SparseApplyHost,
                       BindUpdate(ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()));
XLA_FFI_DEFINE_HANDLER(kSquaredNormsHost, SquaredNormsHost,
                       ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().RemainingArgs().RemainingRets());

}  // namespace

XLA_FFI_REGISTER_HANDLER(::xla::ffi::GetXlaFfiApi(), kApplyTarget, "Host", kApplyHost);
XLA_FFI_REGISTER_HANDLER(::xla::ffi::GetXlaFfiApi(), kSparseApplyTarget, "Host",
                         kSparseApplyHost);
XLA_FFI_REGISTER_HANDLER(::xla::ffi::GetXlaFfiApi(), kSquaredNormsTarget, "Host",
                         kSquaredNormsHost);

}  // namespace xla_kernels
}  // namespace rmsprop_op

namespace tensorflow {
RMSPROP_REGISTER_XLA_KERNELS(DEVICE_CPU_XLA_JIT);
}  // namespace tensorflow

#endif  // RMSPROP_OP_XLA
