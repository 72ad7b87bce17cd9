// The bodies of our XLA FFI handlers, for any device: decode the custom
// call's operands (custom_calls.h), check the values as the op kernels do
// (op_inputs.h), and call the same device functors. A Backend supplies the
// device: its functor Device, `device()`, `ReadDoubles` / `Copy` for its
// memory, and `Failure()`, an error from them (or success).
#ifndef RMSPROP_OP_CC_KERNELS_XLA_FFI_HANDLERS_H_
#define RMSPROP_OP_CC_KERNELS_XLA_FFI_HANDLERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rmsprop_op/cc/kernels/common/dtypes.h"
#include "rmsprop_op/cc/kernels/common/functors.h"
#include "rmsprop_op/cc/kernels/common/hyperparameters.h"
#include "rmsprop_op/cc/kernels/common/op_inputs.h"
#include "rmsprop_op/cc/kernels/xla/custom_calls.h"
#include "xla/ffi/api/ffi.h"
#include "xla/primitive_util.h"

// Exported by libtensorflow_framework; declared in XLA's internal ffi_api.h.
namespace xla::ffi {
const XLA_FFI_Api* GetXlaFfiApi();
}  // namespace xla::ffi

namespace rmsprop_op {
namespace xla_kernels {

namespace ffi = ::xla::ffi;

// What every update handler binds after its device's context: the layout's
// attributes (CallLayout::Attributes), then every operand and result.
template <typename Binding>
auto BindUpdate(Binding binding) {
  return std::move(binding)
      .template Attr<int64_t>("num_vars")
      .template Attr<int64_t>("centered")
      .template Attr<int64_t>("momentum")
      .template Attr<int64_t>("ema")
      .template Attr<int64_t>("grouped")
      .template Attr<int64_t>("epsilon_after_sqrt")
      .template Attr<int64_t>("apply_weight_decay")
      .RemainingArgs()
      .RemainingRets();
}

inline ffi::Error ToFfiError(const absl::Status& status) {
  if (status.ok()) return ffi::Error::Success();
  return ffi::Error(static_cast<ffi::ErrorCode>(status.code()), std::string(status.message()));
}

template <typename T>
constexpr ffi::DataType kFfiTypeOf =
    static_cast<ffi::DataType>(::xla::primitive_util::NativeToPrimitiveType<T>());

template <typename T>
struct Tag {
  using type = T;
};

// f(Tag<T>{}) for the dtype T of `type` (one of dtypes.h).
template <typename F>
ffi::Error ForEachDtype(ffi::DataType type, const F& f) {
#define RMSPROP_CASE(T) \
  if (type == kFfiTypeOf<T>) return f(Tag<T>{});
  RMSPROP_FOR_EACH_DTYPE(RMSPROP_CASE)
#undef RMSPROP_CASE
  return ffi::Error::InvalidArgument("rmsprop_op: unsupported dtype");
}

// The layout of an update from its custom call's attributes.
inline CallLayout LayoutOf(int64_t num_vars, int64_t centered, int64_t momentum, int64_t ema,
                           int64_t grouped, int64_t epsilon_after_sqrt,
                           int64_t apply_weight_decay) {
  CallLayout layout;
  layout.num_vars = num_vars;
  layout.centered = centered;
  layout.momentum = momentum;
  layout.ema = ema;
  layout.indexed = grouped;
  layout.epsilon_after_sqrt = epsilon_after_sqrt;
  layout.apply_weight_decay = apply_weight_decay;
  return layout;
}

// The custom call's operands and results, decoded.
struct Buffers {
  std::vector<ffi::AnyBuffer> args;
  std::vector<ffi::AnyBuffer> rets;  // the results' buffers
};

inline ffi::Error Decode(const ffi::RemainingArgs& args, const ffi::RemainingRets& rets,
                         Buffers* out) {
  for (size_t i = 0; i < args.size(); ++i) {
    auto arg = args.get<ffi::AnyBuffer>(i);
    if (arg.has_error()) return arg.error();
    out->args.push_back(*arg);
  }
  for (size_t i = 0; i < rets.size(); ++i) {
    auto ret = rets.get<ffi::AnyBuffer>(i);
    if (ret.has_error()) return ret.error();
    out->rets.push_back(**ret);
  }
  return ffi::Error::Success();
}

// Reads the float64 scalars from position `first` on: `read(name, &v)`
// for each name of `names`, in order.
template <typename Backend>
class ScalarReader {
 public:
  ScalarReader(Backend& backend, const Buffers& b, size_t first,
               std::vector<const char*> names)
      : names_(std::move(names)), values_(names_.size()) {
    for (size_t k = 0; k < names_.size(); ++k) {
      backend.ReadDoubles(b.args[first + k].untyped_data(), &values_[k], 1);
    }
  }
  absl::Status operator()(const char* name, double* v) const {
    for (size_t k = 0; k < names_.size(); ++k) {
      if (std::string(names_[k]) == name) {
        *v = values_[k];
        return absl::OkStatus();
      }
    }
    return absl::InternalError(absl::StrCat("no scalar operand ", name));
  }

 private:
  std::vector<const char*> names_;
  std::vector<double> values_;
};

#define RMSPROP_NAME(name, ...) #name,
inline std::vector<const char*> HyperparameterNames() {
  return {RMSPROP_HYPERPARAMETERS(RMSPROP_NAME)};
}
inline std::vector<const char*> ExtrasNames() { return {RMSPROP_EXTRAS(RMSPROP_NAME)}; }
#undef RMSPROP_NAME

// The variables' buffers, the results, where XLA aliased them (always, unless
// it had to copy: then the results start as copies of the operands).
template <typename T, typename Backend>
SlotPointers<T> ResultSlots(Backend& backend, const Buffers& b, const CallLayout& layout,
                            int i) {
  auto ptr = [&](int pos) -> T* {
    if (pos < 0) return nullptr;
    void* out = b.rets[pos].untyped_data();
    const void* in = b.args[pos].untyped_data();
    if (out != in) backend.Copy(out, in, b.args[pos].size_bytes());
    return static_cast<T*>(out);
  };
  return {ptr(layout.var(i)), ptr(layout.ms(i)), ptr(layout.mg(i)), ptr(layout.mom(i)),
          ptr(layout.ema_slot(i))};
}

// kApplyTarget.
template <typename Backend>
ffi::Error Apply(Backend& backend, const CallLayout& layout, const Buffers& b) {
  const int n = static_cast<int>(layout.num_vars);
  const size_t first_grad = layout.num_variables();
  const size_t first_scalar = first_grad + n;
  return ForEachDtype(b.args[0].element_type(), [&](auto tag) -> ffi::Error {
    using T = typename decltype(tag)::type;
    HyperOf<T> h;
    const ScalarReader<Backend> hyper(backend, b, first_scalar, HyperparameterNames());
    if (ffi::Error e = backend.Failure(); e.failure()) return e;
    absl::Status status =
        HyperparametersFrom<T>(hyper, layout.momentum, layout.epsilon_after_sqrt, &h);
    if (!status.ok()) return ToFfiError(status);
    ExtrasOf<T> extras;
    bool has_extras = false;
    std::vector<double> clip_divisors;
    if (layout.indexed) {
      const size_t first_extra = first_scalar + HyperparameterNames().size();
      const ScalarReader<Backend> read(backend, b, first_extra, ExtrasNames());
      const ffi::AnyBuffer& divisors = b.args[first_extra + ExtrasNames().size()];
      clip_divisors.resize(divisors.element_count());
      backend.ReadDoubles(divisors.untyped_data(), clip_divisors.data(), clip_divisors.size());
      if (ffi::Error e = backend.Failure(); e.failure()) return e;
      status = ExtrasFrom<T>(read, clip_divisors.size(), layout.apply_weight_decay,
                             layout.ema, &extras, &has_extras);
      if (!status.ok()) return ToFfiError(status);
      if (has_extras && !kIsReal<T>) {
        return ffi::Error(ffi::ErrorCode::kUnimplemented,
                          "the fused extras (loss scale, clipping, weight decay, EMA) "
                          "take real dtypes; nothing was updated");
      }
    }
    std::vector<DenseUpdate<T>> updates;
    for (int i = 0; i < n; ++i) {
      const int64_t size = b.args[layout.var(i)].element_count();
      if (size == 0) continue;
      updates.push_back({ResultSlots<T>(backend, b, layout, i),
                         static_cast<const T*>(b.args[first_grad + i].untyped_data()), size,
                         clip_divisors.empty() ? 1.0 : clip_divisors[i]});
    }
    if (updates.empty()) return ffi::Error::Success();
    const DeviceStatus done = functor::DenseApplyRMSProp<typename Backend::Device, T>()(
        backend.device(), updates.data(), static_cast<int>(updates.size()), h,
        has_extras ? &extras : nullptr);
    return ToFfiError(done.ok() ? absl::OkStatus() : DeviceError(done));
  });
}

// A sparse update's checked inputs, for the device's sparse functor.
template <typename T>
struct SparseCall {
  SlotPointers<T> slots;
  const T* grad;
  int64_t num_indices;
  int64_t num_rows;
  int64_t row_size;
  HyperOf<T> h;
};

// kSparseApplyTarget: `run(call, indices)` runs the device's functor on a
// SparseCall<T> and the indices (const int32_t* or const int64_t*).
template <typename Backend, typename Run>
ffi::Error SparseApply(Backend& backend, const CallLayout& layout, const Buffers& b,
                       const Run& run) {
  const size_t grad = layout.num_variables();
  const ffi::AnyBuffer& indices = b.args[grad + 1];
  return ForEachDtype(b.args[0].element_type(), [&](auto tag) -> ffi::Error {
    using T = typename decltype(tag)::type;
    SparseCall<T> call;
    const ScalarReader<Backend> hyper(backend, b, grad + 2, HyperparameterNames());
    if (ffi::Error e = backend.Failure(); e.failure()) return e;
    const absl::Status status =
        HyperparametersFrom<T>(hyper, layout.momentum, layout.epsilon_after_sqrt, &call.h);
    if (!status.ok()) return ToFfiError(status);
    const ffi::AnyBuffer& var = b.args[0];
    call.num_rows = var.dimensions()[0];
    call.row_size = call.num_rows > 0 ? var.element_count() / call.num_rows : 0;
    call.num_indices = indices.element_count();
    if (call.num_indices == 0) return ffi::Error::Success();
    call.slots = ResultSlots<T>(backend, b, layout, 0);
    call.grad = static_cast<const T*>(b.args[grad].untyped_data());
    if (indices.element_type() == ffi::DataType::S32) {
      return run(call, static_cast<const int32_t*>(indices.untyped_data()));
    }
    return run(call, static_cast<const int64_t*>(indices.untyped_data()));
  });
}

// A handler's answer: its body's error, else the backend's.
template <typename Backend>
ffi::Error Finish(const Backend& backend, ffi::Error error) {
  return error.failure() ? std::move(error) : backend.Failure();
}

// kSquaredNormsTarget.
template <typename Backend>
ffi::Error SquaredNorms(Backend& backend, const Buffers& b) {
  const size_t n = b.args.size() - 1;
  double divisor;
  backend.ReadDoubles(b.args[n].untyped_data(), &divisor, 1);
  if (ffi::Error e = backend.Failure(); e.failure()) return e;
  absl::Status status = CheckNormsDivisor(divisor);
  if (!status.ok() || n == 0) return ToFfiError(status);
  return ForEachDtype(b.args[0].element_type(), [&](auto tag) -> ffi::Error {
    using T = typename decltype(tag)::type;
    if constexpr (!kIsReal<T>) {
      return ffi::Error::InvalidArgument("squared norms take real dtypes");
    } else {
      std::vector<const T*> grads(n);
      std::vector<int64_t> sizes(n);
      for (size_t i = 0; i < n; ++i) {
        grads[i] = static_cast<const T*>(b.args[i].untyped_data());
        sizes[i] = b.args[i].element_count();
      }
      const DeviceStatus done = functor::SquaredNorms<typename Backend::Device, T>()(
          backend.device(), grads.data(), sizes.data(), static_cast<int>(n), divisor,
          static_cast<double*>(b.rets[0].untyped_data()));
      return ToFfiError(done.ok() ? absl::OkStatus() : DeviceError(done));
    }
  });
}

}  // namespace xla_kernels
}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_XLA_FFI_HANDLERS_H_
