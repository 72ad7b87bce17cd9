// The checks of the sparse kernels against the CPU reference: duplicates
// summed, bad indices reported with nothing written. Included by
// gpu_check.cu only, inside its anonymous namespace, after
// gpu_check_reference.cu.h.
#ifndef RMSPROP_OP_GPU_CHECK_SPARSE_CU_H_
#define RMSPROP_OP_GPU_CHECK_SPARSE_CU_H_

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

#endif  // RMSPROP_OP_GPU_CHECK_SPARSE_CU_H_
