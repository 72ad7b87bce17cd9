// Checks rmsprop_math::FlushedDouble (the CUDA kernels' float64 with the
// CPU's flush-to-zero) against this processor's own float64 with MXCSR's DAZ
// and FTZ set, as TensorFlow runs its CPU kernels: every operation, then the
// whole update of rmsprop_math.h (real and complex), bit for bit, on values
// drawn around the smallest normal. Built and run by tests/test_flushed_double.py.
#include <xmmintrin.h>

#include <cfloat>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

#include "rmsprop_op/cc/kernels/common/flushed_double.h"

namespace {

using rmsprop_math::Complex;
using rmsprop_math::FlushedDouble;
using rmsprop_math::Hyper;

constexpr unsigned kDazFtz = 0x8040;

uint64_t Bits(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}

// The processor's operations, with DAZ and FTZ on only inside.
struct HardwareFlush {
  HardwareFlush() : saved(_mm_getcsr()) { _mm_setcsr(saved | kDazFtz); }
  ~HardwareFlush() { _mm_setcsr(saved); }
  unsigned saved;
};

__attribute__((noinline)) double Hardware(char op, volatile double a, volatile double b) {
  HardwareFlush flush;
  switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    default: return a / b;
  }
}

__attribute__((noinline)) double Emulated(char op, double a, double b) {
  const FlushedDouble x(a), y(b);
  switch (op) {
    case '+': return x + y;
    case '-': return x - y;
    case '*': return x * y;
    default: return x / y;
  }
}

// Values whose results land around the smallest normal: mantissas drawn
// whole, exponents near where the product, quotient or sum is tiny.
double Draw(std::mt19937_64& rng, int exponent_lo, int exponent_hi) {
  std::uniform_int_distribution<int> exponent(exponent_lo, exponent_hi);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  const double x = std::ldexp(mantissa(rng), exponent(rng));
  return (rng() & 1) ? -x : x;
}

template <bool kCentered, bool kMomentum, typename C, typename R>
void Update(C* v, const Hyper<R>& h) {
  C no_ema = C(0);
  rmsprop_math::UpdateElement<rmsprop_math::Variant<kCentered, kMomentum>, C>(
      v[4], v[0], v[1], v[2], v[3], no_ema, h, rmsprop_math::Extras<R>{});
}

// The same hyperparameters in FlushedDouble.
Hyper<FlushedDouble> Flushed(const Hyper<double>& h) {
  return rmsprop_math::ConvertAll<FlushedDouble>(h, [](double x) { return FlushedDouble(x); });
}

template <bool kCentered, bool kMomentum>
__attribute__((noinline)) void HardwareUpdate(double* v, const Hyper<double>& h) {
  HardwareFlush flush;
  Update<kCentered, kMomentum>(v, h);
}

template <bool kCentered, bool kMomentum>
__attribute__((noinline)) void EmulatedUpdate(double* v, const Hyper<double>& h) {
  FlushedDouble f[5];
  for (int i = 0; i < 5; ++i) f[i] = FlushedDouble(v[i]);
  Update<kCentered, kMomentum>(f, Flushed(h));
  for (int i = 0; i < 5; ++i) v[i] = f[i];
}

template <bool kCentered, bool kMomentum>
__attribute__((noinline)) void HardwareComplexUpdate(Complex<double>* v, const Hyper<double>& h) {
  HardwareFlush flush;
  Update<kCentered, kMomentum>(v, h);
}

template <bool kCentered, bool kMomentum>
__attribute__((noinline)) void EmulatedComplexUpdate(Complex<double>* v, const Hyper<double>& h) {
  Complex<FlushedDouble> f[5];
  for (int i = 0; i < 5; ++i) f[i] = {FlushedDouble(v[i].re), FlushedDouble(v[i].im)};
  Update<kCentered, kMomentum>(f, Flushed(h));
  for (int i = 0; i < 5; ++i) v[i] = {f[i].re, f[i].im};
}

struct Tally {
  int64_t cases = 0, flushed = 0, failed = 0;
  // Compares the n values at got/want/unflushed whose `stored` bit is set
  // (the update leaves mg and mom alone when absent).
  void Compare(const char* what, const double* got, const double* want, int n,
               const double* unflushed, unsigned stored = ~0u) {
    ++cases;
    bool differs_from_ieee = false;
    for (int i = 0; i < n; ++i) {
      if (!(stored >> i & 1u)) continue;
      differs_from_ieee |= Bits(want[i]) != Bits(unflushed[i]);
      if (Bits(got[i]) != Bits(want[i]) && failed++ < 10) {
        std::printf("FAIL %s [%d]: emulated %a, processor %a\n", what, i, got[i], want[i]);
      }
    }
    flushed += differs_from_ieee;
  }
};

template <bool kCentered, bool kMomentum>
void CheckUpdates(std::mt19937_64& rng, Tally* tally) {
  for (int k = 0; k < 20000; ++k) {
    // ms and mg near the smallest normal (dead units decaying), gradients
    // tiny or zero, var ordinary; hyperparameters of every size.
    double v[5] = {Draw(rng, -3, 3), std::fabs(Draw(rng, -1030, -1010)),
                   Draw(rng, -1030, -1010) * 1e-3, Draw(rng, -1030, -1000),
                   (k % 4 == 0) ? 0.0 : Draw(rng, -530, -500)};
    const double rho = std::ldexp(1.0, -(k % 8)) * 0.9;
    Hyper<double> h = {};
    h.lr = Draw(rng, -12, 0) * ((k & 1) ? 1 : -1);
    h.rho = rho;
    h.momentum = kMomentum ? 0.9 : 0.0;
    h.epsilon = 1e-300;
    rmsprop_math::Derive(h, /*epsilon_after_sqrt=*/k % 3 == 0);
    double want[5], got[5], ieee[5];
    std::memcpy(want, v, sizeof(v));
    std::memcpy(got, v, sizeof(v));
    std::memcpy(ieee, v, sizeof(v));
    HardwareUpdate<kCentered, kMomentum>(want, h);
    EmulatedUpdate<kCentered, kMomentum>(got, h);
    Update<kCentered, kMomentum>(ieee, h);
    // var, ms, then mg and mom where the variant has them.
    const unsigned stored = 0x3u | (kCentered ? 0x4u : 0u) | (kMomentum ? 0x8u : 0u);
    tally->Compare("update", got, want, 4, ieee, stored);

    Complex<double> c[5], cw[5], cg[5], ci[5];
    for (int i = 0; i < 5; ++i) c[i] = {v[i], v[(i + 1) % 5] * 0.5};
    std::memcpy(cw, c, sizeof(c));
    std::memcpy(cg, c, sizeof(c));
    std::memcpy(ci, c, sizeof(c));
    HardwareComplexUpdate<kCentered, kMomentum>(cw, h);
    EmulatedComplexUpdate<kCentered, kMomentum>(cg, h);
    Update<kCentered, kMomentum>(ci, h);
    const unsigned parts = 0xfu | (kCentered ? 0x30u : 0u) | (kMomentum ? 0xc0u : 0u);
    tally->Compare("complex update", &cg[0].re, &cw[0].re, 8, &ci[0].re, parts);
  }
}

}  // namespace

int main() {
  std::mt19937_64 rng(20261202);
  Tally ops, updates;
  for (int k = 0; k < 400000; ++k) {
    const char op = "+-*/"[k % 4];
    double a, b;
    switch (op) {
      case '*': a = Draw(rng, -600, -400); b = Draw(rng, -1022 + 400 - 200, -1022 + 600 - 200); break;
      case '/': a = Draw(rng, -1030, -1000); b = Draw(rng, -20, 20); break;
      default: a = Draw(rng, -1023, -1018); b = Draw(rng, -1023, -1018); break;
    }
    if (k % 97 == 0) a = std::ldexp(1.0, -1074) * (k % 7);  // subnormal operands
    if (k % 89 == 0) b = DBL_MIN;
    const double want = Hardware(op, a, b);
    const double got = Emulated(op, a, b);
    const double ieee = (op == '+') ? a + b : (op == '-') ? a - b : (op == '*') ? a * b : a / b;
    const char what[2] = {op, 0};
    ops.Compare(what, &got, &want, 1, &ieee);
  }
  CheckUpdates<false, false>(rng, &updates);
  CheckUpdates<true, false>(rng, &updates);
  CheckUpdates<false, true>(rng, &updates);
  CheckUpdates<true, true>(rng, &updates);
  std::printf("operations: %" PRId64 " cases, %" PRId64 " flushed, %" PRId64 " failed\n",
              ops.cases, ops.flushed, ops.failed);
  std::printf("updates: %" PRId64 " cases, %" PRId64 " flushed, %" PRId64 " failed\n",
              updates.cases, updates.flushed, updates.failed);
  return ops.failed + updates.failed == 0 ? 0 : 1;
}
