// Finding, checking and locking the resource variables an update op writes.
//
// This follows TensorFlow's training_op_helpers.h (lock every variable's
// mutex in address order; copy a buffer that a reader still holds before
// writing it) with three differences: every problem is an InvalidArgument
// status naming the input, instead of a crash or a later failure; buffers
// are copied with a plain device memcpy, so that the GPU build needs
// nothing from TensorFlow beyond libtensorflow_framework; and a sparse
// update does not switch the variable to copy-on-read mode (after which
// every read copies the whole variable) but updates like a dense one, under
// the exclusive lock. Only where copy-on-read is already on (TensorFlow's
// own sparse ops turned it on) does it share the lock, checking the mode
// again once it holds the locks (TensorFlow's does not), so that a tensor
// read without a copy never changes afterwards.
#ifndef RMSPROP_OP_CC_KERNELS_COMMON_VARIABLE_ACCESS_H_
#define RMSPROP_OP_CC_KERNELS_COMMON_VARIABLE_ACCESS_H_

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"

namespace rmsprop_op {

// A resource input of an update op and the name users know it by. The name
// is formatted only for an error message: the grouped op has thousands of
// inputs, and building their names on every call would cost more than the
// update of a small variable.
struct VariableInput {
  int index;         // input index in the OpKernelContext
  const char* base;  // the op's input name, e.g. "var", "ms", "mom"
  int list_index;    // position in a list input, or -1

  std::string name() const {
    return list_index < 0 ? std::string(base)
                          : absl::StrCat(base, "[", list_index, "]");
  }
};

// The input indices of a (possibly list-valued) resource input, named.
inline absl::Status NamedVariableInputs(tensorflow::OpKernelContext* ctx,
                                        const char* name, bool indexed,
                                        std::vector<VariableInput>* out) {
  int start, stop;
  TF_RETURN_IF_ERROR(ctx->op_kernel().InputRange(name, &start, &stop));
  for (int i = start; i < stop; ++i) {
    out->push_back({i, name, indexed ? i - start : -1});
  }
  return absl::OkStatus();
}

// Copies `src` into a fresh buffer on `Device`. Specialized per device in the
// CPU and GPU kernel files.
template <typename Device>
void DeviceMemcpy(const Device& d, void* dst, const void* src, size_t bytes);

// Holds the variables of one update, looked up, validated for existence,
// dtype and distinctness, and locked. Tensors are ready to be written in
// place for as long as this object lives.
template <typename Device>
class LockedVariables {
 public:
  // Looks up and locks `inputs`. `dtype` is the dtype every variable must
  // have. An update takes the variables' locks exclusively and gives a
  // variable whose buffer a reader still holds a private copy first, so that
  // no tensor already read changes. The one exception: a sparse update
  // without use_locking of variables that are all in copy-on-read mode
  // (TensorFlow's own sparse training ops turn it on; then every read
  // copies) takes the locks shared and writes in place, as those ops do.
  // We never turn copy-on-read on ourselves: every later read of the
  // variable would copy it whole, and Keras 3's Embedding reads its whole
  // table each step (benchmarks/README.md, "Kernel notes").
  absl::Status Acquire(tensorflow::OpKernelContext* ctx,
                       std::vector<VariableInput> inputs,
                       tensorflow::DataType dtype, bool use_locking,
                       bool sparse) {
    const size_t n = inputs.size();
    return Acquire(ctx, std::move(inputs), std::vector<tensorflow::DataType>(n, dtype),
                   /*dtypes_differ=*/false, use_locking, sparse);
  }

  // The same with a dtype per input (dtypes[i] for inputs[i]): the compact
  // state's codes and scales differ from their variable's dtype.
  absl::Status Acquire(tensorflow::OpKernelContext* ctx,
                       std::vector<VariableInput> inputs,
                       std::vector<tensorflow::DataType> dtypes,
                       bool dtypes_differ, bool use_locking, bool sparse) {
    inputs_ = std::move(inputs);
    dtypes_ = std::move(dtypes);
    dtypes_differ_ = dtypes_differ;
    vars_.reserve(inputs_.size());
    for (const VariableInput& input : inputs_) {
      tensorflow::core::RefCountPtr<tensorflow::Var> var;
      absl::Status s = tensorflow::LookupResource(
          ctx, tensorflow::HandleFromInput(ctx, input.index), &var);
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(input.name(),
                         " is not an initialized resource variable: ",
                         s.message()));
      }
      vars_.push_back(std::move(var));
    }
    TF_RETURN_IF_ERROR(CheckDistinct());
    bool exclusive = !sparse || use_locking || !AllCopyOnRead();
    LockInAddressOrder(exclusive);
    if (!exclusive && !AllCopyOnRead()) {
      // A no-copy read (DisableCopyOnRead, as checkpoint saving does) came
      // between the check and the lock and may hold the buffer: writing it
      // under a shared lock would change a tensor already read.
      shared_locks_.reset();
      exclusive = true;
      LockInAddressOrder(exclusive);
    }
    for (size_t i = 0; i < vars_.size(); ++i) {
      TF_RETURN_IF_ERROR(CheckInitializedWithDtype(i, dtypes_[i]));
      if (exclusive) TF_RETURN_IF_ERROR(UnshareBuffer(ctx, i));
    }
    return absl::OkStatus();
  }

  // The variable's tensor, valid while this object holds the locks.
  const tensorflow::Tensor& tensor(int i) const { return *vars_[i]->tensor(); }
  std::string name(int i) const { return inputs_[i].name(); }
  int size() const { return static_cast<int>(vars_.size()); }

 private:
  absl::Status CheckDistinct() const {
    std::vector<std::pair<const tensorflow::Var*, int>> by_address;
    for (size_t i = 0; i < vars_.size(); ++i) {
      by_address.emplace_back(vars_[i].get(), static_cast<int>(i));
    }
    std::sort(by_address.begin(), by_address.end());
    for (size_t i = 1; i < by_address.size(); ++i) {
      if (by_address[i].first == by_address[i - 1].first) {
        return absl::InvalidArgumentError(absl::StrCat(
            inputs_[by_address[i - 1].second].name(), " and ",
            inputs_[by_address[i].second].name(),
            " are the same variable; the variable and each of its slots must "
            "be distinct variables"));
      }
    }
    return absl::OkStatus();
  }

  bool AllCopyOnRead() const {
    for (const auto& var : vars_) {
      if (!var->copy_on_read_mode.load()) return false;
    }
    return true;
  }

  absl::Status CheckInitializedWithDtype(size_t i,
                                         tensorflow::DataType dtype) const {
    const tensorflow::Tensor* t = vars_[i]->tensor();
    if (!vars_[i]->is_initialized || !t->IsInitialized()) {
      return absl::InvalidArgumentError(absl::StrCat(
          inputs_[i].name(), " is not initialized; assign it a value first"));
    }
    if (t->dtype() != dtype && dtypes_differ_) {
      return absl::InvalidArgumentError(absl::StrCat(
          inputs_[i].name(), " has dtype ", tensorflow::DataTypeString(t->dtype()),
          " but must be ", tensorflow::DataTypeString(dtype), "; nothing was updated"));
    }
    if (t->dtype() != dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          inputs_[i].name(), " has dtype ", tensorflow::DataTypeString(t->dtype()),
          " but grad has dtype ", tensorflow::DataTypeString(dtype),
          "; they must match"));
    }
    return absl::OkStatus();
  }

  // A reader may still hold the variable's buffer (ReadVariableOp aliases it
  // outside copy-on-read mode); give the variable a private copy first.
  absl::Status UnshareBuffer(tensorflow::OpKernelContext* ctx, size_t i) {
    tensorflow::Tensor* t = vars_[i]->tensor();
    if (t->RefCountIsOne()) return absl::OkStatus();
    tensorflow::Tensor copy;
    tsl::AllocatorAttributes attr;
    attr.set_gpu_compatible(true);
    attr.set_nic_compatible(true);
    TF_RETURN_IF_ERROR(ctx->allocate_temp(t->dtype(), t->shape(), &copy, attr));
    if (t->TotalBytes() > 0) {
      DeviceMemcpy(ctx->eigen_device<Device>(), copy.data(), t->data(),
                   t->TotalBytes());
    }
    *t = copy;
    return absl::OkStatus();
  }

  void LockInAddressOrder(bool exclusive) {
    std::vector<tsl::mutex*> mutexes;
    for (const auto& var : vars_) mutexes.push_back(var->mu());
    std::sort(mutexes.begin(), mutexes.end());
    mutexes.erase(std::unique(mutexes.begin(), mutexes.end()), mutexes.end());
    if (exclusive) {
      locks_ = std::make_unique<std::vector<tsl::mutex_lock>>();
      locks_->reserve(mutexes.size());
      for (tsl::mutex* mu : mutexes) locks_->emplace_back(*mu);
    } else {
      shared_locks_ = std::make_unique<std::vector<tsl::tf_shared_lock>>();
      shared_locks_->reserve(mutexes.size());
      for (tsl::mutex* mu : mutexes) shared_locks_->emplace_back(*mu);
    }
  }

  std::vector<VariableInput> inputs_;
  std::vector<tensorflow::DataType> dtypes_;
  bool dtypes_differ_ = false;  // name the expected dtype, not grad's
  // Declared before the locks so that the locks are released first.
  std::vector<tensorflow::core::RefCountPtr<tensorflow::Var>> vars_;
  std::unique_ptr<std::vector<tsl::mutex_lock>> locks_;
  std::unique_ptr<std::vector<tsl::tf_shared_lock>> shared_locks_;
};

}  // namespace rmsprop_op

#endif  // RMSPROP_OP_CC_KERNELS_COMMON_VARIABLE_ACCESS_H_
