"""How `make bench` times: medians of repeated calls, updates unrolled in one
tf.function call, the bandwidth probe that gives each row its limit, and the
table the rows are printed to."""
import ctypes
import os
import statistics
import time

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_LIBRARY = os.path.join(HERE, "_bandwidth_probe.so")


def median_seconds(fn, repeats, warmup=3, min_time=0.0):
    """Median of `repeats` timed calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def best_in_turn(measures, rounds=3):
    """name -> seconds: each zero-argument `measures[name]` called in turn,
    `rounds` times round, the least of each. Every side of a comparison and
    the limit that bounds it are then measured under the same load, and a
    round disturbed by the rest of a shared machine does not count."""
    best = {name: float("inf") for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            best[name] = min(best[name], measure())
    return best


def repeats_for(num_bytes):
    return 10 if num_bytes > 2e8 else 30 if num_bytes > 2e7 else 100


def _staggered(n, i):
    """n floats, 64-byte aligned, starting (i * 1088) mod 4096 bytes into a
    page. Arrays that all start at the same offset within a page (as equal
    large allocations do) compete for the same cache sets: five of them
    streamed 27% slower here (13.1 against 10.3 ms at 1.6e7 floats), a
    limit below what the update itself reaches."""
    floats_per_line, stagger = 16, 272  # 272 floats: 1088 bytes, 17 cache lines
    buffer = np.full(n + 4096, 0.5, np.float32)
    start = -(buffer.ctypes.data // 4) % floats_per_line + i * stagger % 1024
    return buffer[start:start + n]


class BandwidthProbe:
    """Times the streaming kernel over float32 arrays of a given size."""

    def __init__(self, threads):
        self.lib = ctypes.CDLL(PROBE_LIBRARY)
        self.lib.stream.argtypes = [ctypes.POINTER(ctypes.POINTER(ctypes.c_float)), ctypes.c_int,
                                    ctypes.c_int64, ctypes.c_int]
        self.threads = threads
        self.cache = {}

    def seconds(self, num_bytes, num_arrays, fresh=False):
        """Time to read num_arrays arrays and write num_arrays - 1 of them,
        num_bytes moved in all (num_arrays=1: read one array). Measured once
        per size, or again with `fresh`."""
        key = (num_bytes, num_arrays)
        if fresh or key not in self.cache:
            n = max(1, int(num_bytes // (4 * (2 * num_arrays - 1))))
            arrays = [_staggered(n, i) for i in range(num_arrays)]
            pointers = (ctypes.POINTER(ctypes.c_float) * num_arrays)(
                *[a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) for a in arrays])
            run = lambda: self.lib.stream(pointers, num_arrays, n, self.threads)  # noqa: E731
            self.cache[key] = median_seconds(run, repeats_for(num_bytes))
        return self.cache[key]


class Bench:
    def __init__(self, probe, quick):
        self.probe = probe
        self.quick = quick
        self.rows = []

    def add(self, group, case, impl, seconds, num_bytes=None, num_arrays=None, limit_seconds=None,
            **extra):
        """A row; its limit is the probe's for (num_bytes, num_arrays), or
        `limit_seconds` for rows of several passes. `seconds` None: a row
        that is not timed (its numbers are in `extra`)."""
        row = dict(group=group, case=case, impl=impl,
                   ms=None if seconds is None else seconds * 1e3, **extra)
        if num_bytes:
            limit = limit_seconds or self.probe.seconds(num_bytes, num_arrays)
            row.update(bytes=num_bytes, gb_per_s=num_bytes / seconds / 1e9,
                       limit_ms=limit * 1e3, of_limit=limit / seconds)
        self.rows.append(row)
        fraction = f"{row['of_limit']:6.0%}" if "of_limit" in row else "      "
        limit_ms = f"{row['limit_ms']:9.3f}" if "limit_ms" in row else " " * 9
        per_call = extra.get("per_call")
        calls = "eager" if per_call == 0 else "-" if per_call is None else str(per_call)
        ms = " " * 10 if row["ms"] is None else f"{row['ms']:10.3f}"
        print(f"{group:<9} {case:<34} {impl:<24} {calls:>8} {ms} {limit_ms} {fraction}"
              + "".join(f" {k}={v:.3g}" for k, v in extra.items()
                        if seconds is None and isinstance(v, float)), flush=True)
        return row


class Timed:
    """`fn` unrolled `per_call` times in one tf.function, so that an update is
    timed without most of the cost of calling the function from Python (which
    grows with the number of variables it captures; a tf.while_loop would
    instead pay per iteration for every captured variable); `seconds()` is
    per update. `jit_compile=True`: the function is compiled by XLA."""

    def __init__(self, fn, per_call=1, jit_compile=None):
        self.per_call = per_call

        @tf.function(autograph=False, jit_compile=jit_compile)  # a plain Python loop, unrolled
        def run():
            for _ in range(per_call):  # unrolled; automatic control deps keep the order
                fn()
        self.run = run

    def seconds(self, repeats):
        return median_seconds(lambda: self.run(), repeats) / self.per_call


def updates_per_call(elements):
    """Enough updates per call that a call lasts several milliseconds."""
    return int(min(50, max(1, 1e7 // max(elements, 1))))
