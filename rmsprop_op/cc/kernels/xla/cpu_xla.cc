// The fused RMSProp ops inside XLA on the CPU: the XLA kernels registered
// for XLA's CPU device, and the Host handlers of their custom calls, which
// run the CPU functors on the thread pool XLA gives them. Built where
// tools/tf_build_flags.py finds what it needs in TensorFlow (RMSPROP_OP_XLA).

#include "rmsprop_op/cc/kernels/xla/registration_state.h"

// Whether XLA can compile our ops on the CPU (read by rmsprop_op._loader):
// RegistrationState, or 0 when this library was built without XLA kernels.
extern "C" __attribute__((visibility("default"))) int rmsprop_op_xla_kernels() {
#ifdef RMSPROP_OP_XLA
  return rmsprop_op::xla_kernels::RegistrationState("XLA_CPU_JIT");
#else
  return 0;
#endif
}

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

// Exported by libtensorflow_framework; declared in XLA's internal ffi_api.h.
namespace xla::ffi {
const XLA_FFI_Api* GetXlaFfiApi();
}  // namespace xla::ffi

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
  const size_t grad = layout.num_variables();
  const ffi::AnyBuffer& indices = b.args[grad + 1];
  return ForEachDtype(b.args[0].element_type(), [&](auto tag) -> ffi::Error {
    using T = typename decltype(tag)::type;
    HyperOf<T> h;
    const ScalarReader<HostBackend> hyper(backend, b, grad + 2, HyperparameterNames());
    const absl::Status status =
        HyperparametersFrom<T>(hyper, layout.momentum, layout.epsilon_after_sqrt, &h);
    if (!status.ok()) return ToFfiError(status);
    const ffi::AnyBuffer& var = b.args[0];
    const int64_t num_rows = var.dimensions()[0];
    const int64_t row_size = num_rows > 0 ? var.element_count() / num_rows : 0;
    auto update = [&](auto* index_data) -> ffi::Error {
      using Tindex = std::remove_const_t<std::remove_pointer_t<decltype(index_data)>>;
      const int64_t bad = functor::SparseApplyRMSProp<CPUDevice, T, Tindex>()(
          backend.device(), ResultSlots<T>(backend, b, layout, 0),
          static_cast<const T*>(b.args[grad].untyped_data()), index_data,
          indices.element_count(), num_rows, row_size, h);
      return ToFfiError(bad < 0 ? absl::OkStatus() : BadIndexError(bad, num_rows));
    };
    if (indices.element_type() == ffi::DataType::S32) {
      return update(static_cast<const int32_t*>(indices.untyped_data()));
    }
    return update(static_cast<const int64_t*>(indices.untyped_data()));
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

// The update handlers' binding: the layout's attributes, then every operand
// and result.
auto BindUpdate() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Attr<int64_t>("num_vars")
      .Attr<int64_t>("centered")
      .Attr<int64_t>("momentum")
      .Attr<int64_t>("ema")
      .Attr<int64_t>("grouped")
      .Attr<int64_t>("epsilon_after_sqrt")
      .Attr<int64_t>("apply_weight_decay")
      .RemainingArgs()
      .RemainingRets();
}

XLA_FFI_DEFINE_HANDLER(kApplyHost, ApplyHost, BindUpdate());
XLA_FFI_DEFINE_HANDLER(kSparseApplyHost, SparseApplyHost, BindUpdate());
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
