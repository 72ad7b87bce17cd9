// The checks of the dense kernels against the CPU reference. Included by
// gpu_check.cu only, inside its anonymous namespace, after
// gpu_check_reference.cu.h.
#ifndef RMSPROP_OP_GPU_CHECK_DENSE_CU_H_
#define RMSPROP_OP_GPU_CHECK_DENSE_CU_H_

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

#endif  // RMSPROP_OP_GPU_CHECK_DENSE_CU_H_
