/* The memory-bandwidth limit the benchmark compares every row against: a
 * streaming kernel that reads `num_arrays` float arrays and writes back all
 * but the first, the access pattern of an RMSProp update (grad read; var and
 * slots read and written), with no other work; one array is only read (the
 * pass of a gradient norm). Built by `make bench` for the
 * machine it runs on and loaded with ctypes into the benchmark's process. */
#include <pthread.h>
#include <stdint.h>

#define MAX_THREADS 256

typedef struct {
  float** arrays;
  int num_arrays;
  int64_t begin, end;
  uint32_t sink; /* what a read-only pass computes, so that it is not elided */
} Shard;

/* One loop per array count, with restrict pointers, so that the compiler
 * emits the plain vector loads and stores a memory-bound loop needs. */
#define STREAM_BODY(...)                         \
  for (int64_t i = s->begin; i < s->end; ++i) { \
    __VA_ARGS__                                  \
  }

static void stream1(Shard* s) {
  /* The bits OR-ed together: an integer reduction, which vectorizes. */
  const uint32_t* restrict g = (const uint32_t*)s->arrays[0];
  uint32_t acc = 0;
  STREAM_BODY(acc |= g[i];)
  s->sink = acc;
}
static void stream2(const Shard* s) {
  const float* restrict g = s->arrays[0];
  float* restrict a = s->arrays[1];
  STREAM_BODY(a[i] += g[i];)
}
static void stream3(const Shard* s) {
  const float* restrict g = s->arrays[0];
  float* restrict a = s->arrays[1];
  float* restrict b = s->arrays[2];
  STREAM_BODY(a[i] += g[i]; b[i] += g[i];)
}
static void stream4(const Shard* s) {
  const float* restrict g = s->arrays[0];
  float* restrict a = s->arrays[1];
  float* restrict b = s->arrays[2];
  float* restrict c = s->arrays[3];
  STREAM_BODY(a[i] += g[i]; b[i] += g[i]; c[i] += g[i];)
}
static void stream5(const Shard* s) {
  const float* restrict g = s->arrays[0];
  float* restrict a = s->arrays[1];
  float* restrict b = s->arrays[2];
  float* restrict c = s->arrays[3];
  float* restrict d = s->arrays[4];
  STREAM_BODY(a[i] += g[i]; b[i] += g[i]; c[i] += g[i]; d[i] += g[i];)
}

static void* run_shard(void* arg) {
  Shard* s = (Shard*)arg;
  switch (s->num_arrays) {
    case 1: stream1(s); break;
    case 2: stream2(s); break;
    case 3: stream3(s); break;
    case 4: stream4(s); break;
    case 5: stream5(s); break;
  }
  return 0;
}

/* Streams elements [0, n) of the arrays over `threads` threads. Returns 0,
 * or -1 for an unsupported array or thread count. */
int stream(float** arrays, int num_arrays, int64_t n, int threads) {
  if (num_arrays < 1 || num_arrays > 5 || threads < 1 || threads > MAX_THREADS) return -1;
  pthread_t ids[MAX_THREADS];
  Shard shards[MAX_THREADS];
  const int64_t chunk = (n + threads - 1) / threads;
  for (int t = 0; t < threads; ++t) {
    shards[t].arrays = arrays;
    shards[t].num_arrays = num_arrays;
    shards[t].begin = t * chunk < n ? t * chunk : n;
    shards[t].end = (t + 1) * chunk < n ? (t + 1) * chunk : n;
    if (t > 0) pthread_create(&ids[t], 0, run_shard, &shards[t]);
  }
  run_shard(&shards[0]);
  for (int t = 1; t < threads; ++t) pthread_join(ids[t], 0);
  return 0;
}
