// The checker's timings: every float32 kernel variant against a
// device-to-device copy. Included by gpu_check.cu only, inside its anonymous
// namespace, after gpu_check_support.cu.h.
#ifndef RMSPROP_OP_GPU_CHECK_TIMING_CU_H_
#define RMSPROP_OP_GPU_CHECK_TIMING_CU_H_


// Median time of `fn` over `iterations` runs, in microseconds.
template <typename Fn>
double MedianMicros(cudaStream_t stream, int iterations, Fn fn) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) fn();  // warm up: module load, pool growth
  CHECK_CUDA(cudaStreamSynchronize(stream));
  std::vector<double> times;
  for (int i = 0; i < iterations; ++i) {
    CHECK_CUDA(cudaEventRecord(start, stream));
    fn();
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms * 1e3);
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

class Table {
 public:
  void Row(const std::string& variant, double micros, double bytes) {
    const double gbps = bytes / (micros * 1e-6) / 1e9;
    if (copy_gbps_ == 0) copy_gbps_ = gbps;  // the first row is the copy
    std::printf("%-46s %10.1f %9.1f %8.2f\n", variant.c_str(), micros, gbps,
                gbps / copy_gbps_);
  }

 private:
  double copy_gbps_ = 0;
};

void TimeDense(cudaStream_t stream, std::mt19937_64& rng, Table* table) {
  constexpr int64_t kN = int64_t{1} << 24;
  Slots<float> host = Slots<float>::Random(rng, kN);
  DeviceSlots<float> d(kN);
  d.Upload(host);
  DeviceBuffer<float> grad(kN);
  grad.Upload(RandomVector<float>(rng, kN, -1.0, 1.0));
  for (int v = 0; v < 4; ++v) {
    const bool centered = v & 2, momentum = v & 1;
    const HyperOf<float> h = MakeHyper<float>(momentum);
    const DenseUpdate<float> update = {d.Pointers(centered, momentum, 0),
                                       grad.get(), kN};
    const double us = MedianMicros(stream, 20, [&] {
      CHECK_CUDA(gpu::LaunchDenseApply<float>(stream, &update, 1, h));
    });
    const int slots = 2 + centered + momentum;
    table->Row(std::string("dense float32 16M ") +
                   VariantName(centered, momentum),
               us, 4.0 * kN * (1 + 2 * slots));
  }
  // The same elements as 256 variables of 64K: the grouped op's batching.
  std::vector<DenseUpdate<float>> updates;
  for (int64_t i = 0; i < 256; ++i) {
    updates.push_back(
        {d.Pointers(false, false, i * (kN / 256)), grad.get() + i * (kN / 256),
         kN / 256});
  }
  const HyperOf<float> h = MakeHyper<float>(false);
  const double us = MedianMicros(stream, 20, [&] {
    CHECK_CUDA(gpu::LaunchDenseApply<float>(stream, updates.data(),
                                            static_cast<int>(updates.size()),
                                            h));
  });
  table->Row("dense float32 256 x 64K plain (grouped)", us, 4.0 * kN * 5);
}

void TimeSparse(cudaStream_t stream, std::mt19937_64& rng, Table* table) {
  constexpr int64_t kRows = 1 << 18, kRowSize = 128, kIndices = 1 << 16;
  Slots<float> host = Slots<float>::Random(rng, kRows * kRowSize);
  DeviceSlots<float> d(kRows * kRowSize);
  d.Upload(host);
  DeviceBuffer<float> grad(kIndices * kRowSize);
  grad.Upload(RandomVector<float>(rng, kIndices * kRowSize, -1.0, 1.0));
  DeviceBuffer<int32_t> indices(kIndices);
  AsyncScratch scratch(stream);

  struct Case {
    const char* name;
    int64_t distinct_rows;
    bool centered, momentum;
  };
  const Case cases[] = {{"uniform plain", kRows, false, false},
                        {"uniform centered+mom", kRows, true, true},
                        {"hot (512 rows) plain", 512, false, false}};
  for (const Case& c : cases) {
    std::uniform_int_distribution<int32_t> dist(
        0, static_cast<int32_t>(c.distinct_rows - 1));
    std::vector<int32_t> idx(kIndices);
    for (int32_t& i : idx) i = dist(rng) * static_cast<int32_t>(kRows / c.distinct_rows);
    indices.Upload(idx);
    std::vector<int32_t> unique = idx;
    std::sort(unique.begin(), unique.end());
    const int64_t num_unique =
        std::unique(unique.begin(), unique.end()) - unique.begin();

    const HyperOf<float> h = MakeHyper<float>(c.momentum);
    const SlotPointers<float> slots = d.Pointers(c.centered, c.momentum, 0);
    unsigned long long* first_bad = nullptr;
    CHECK_CUDA(cudaMallocHost(&first_bad, sizeof(*first_bad)));
    const double us = MedianMicros(stream, 20, [&] {
      CHECK_CUDA(gpu::LaunchSparseApply<float>(stream, &scratch, slots,
                                               grad.get(), indices.get(),
                                               kIndices, kRows, kRowSize, h,
                                               first_bad));
    });
    CHECK_CUDA(cudaFreeHost(first_bad));
    const int slot_count = 2 + c.centered + c.momentum;
    const double bytes = 4.0 * kIndices * kRowSize + 4.0 * kIndices +
                         4.0 * num_unique * kRowSize * 2 * slot_count;
    char name[120];
    std::snprintf(name, sizeof(name), "sparse float32 64K x 128 %s", c.name);
    table->Row(name, us, bytes);
  }
}

void RunTimings(cudaStream_t stream, std::mt19937_64& rng) {
  std::printf("\n%-46s %10s %9s %8s\n", "variant", "time (us)", "GB/s",
              "of copy");
  Table table;
  {
    constexpr size_t kBytes = size_t{4} << 24;  // 16M float32
    DeviceBuffer<char> src(kBytes), dst(kBytes);
    CHECK_CUDA(cudaMemset(src.get(), 1, kBytes));
    const double us = MedianMicros(stream, 20, [&] {
      CHECK_CUDA(cudaMemcpyAsync(dst.get(), src.get(), kBytes,
                                 cudaMemcpyDeviceToDevice, stream));
    });
    table.Row("cudaMemcpy device to device 64 MiB", us, 2.0 * kBytes);
  }
  TimeDense(stream, rng, &table);
  TimeSparse(stream, rng, &table);
  std::printf(
      "(GB/s counts the bytes each update must read and write; the copy reads "
      "and writes 64 MiB)\n");
}


#endif  // RMSPROP_OP_GPU_CHECK_TIMING_CU_H_
