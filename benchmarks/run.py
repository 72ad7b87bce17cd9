"""`make bench`: the fused RMSProp update against its peers and the
memory-bandwidth limit, all measured in one process and one run.

Each row is the median of repeated timed runs after warm-up, the best of
three rounds in which every implementation of a case and its limit are
measured in turn. "limit" is a
streaming kernel (benchmarks/bandwidth_probe.c) moving the same bytes with
no arithmetic; "of limit" is limit time / row time. Results are printed as a
table and written to benchmarks/results/run.json (not tracked); the results
the documentation shows are benchmarks/results/published.json, a run copied
there on purpose. The rows are made in benchmarks/*_rows.py, the targets
checked in benchmarks/targets.py.
"""
import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.compact_rows import compact_rows  # noqa: E402
from benchmarks.extras_rows import extras_rows  # noqa: E402
from benchmarks.fit_rows import fit_rows  # noqa: E402
from benchmarks.many_rows import many_variable_rows  # noqa: E402
from benchmarks.op_rows import (SWEEP_SIZES, compute_floor_rows,  # noqa: E402
                                compute_floor_worker, dense_rows, sweep_rows)
from benchmarks.sparse_rows import sparse_rows  # noqa: E402
from benchmarks.targets import summarize  # noqa: E402
from benchmarks.timing import HERE, BandwidthProbe, Bench  # noqa: E402
from benchmarks.xla_rows import xla_rows  # noqa: E402


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(),
                tensorflow=tf.__version__, keras=keras.__version__,
                intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads() or
                os.cpu_count())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    groups = ["dense", "sweep", "sparse", "many", "fit", "extras", "xla", "compact"]
    parser.add_argument("--only", nargs="+", choices=groups, default=groups)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "run.json"))
    parser.add_argument("--compute-floor-worker", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compute_floor_worker:
        return compute_floor_worker(int(args.compute_floor_worker[0]),
                                     args.compute_floor_worker[1])

    threads = machine()["intra_op_threads"]
    probe = BandwidthProbe(threads)
    bench = Bench(probe, args.quick)
    print("Every implementation of a case is timed the same way: `per call` updates unrolled in\n"
          "one tf.function call (eager: no tf.function), ms per update.")
    print(f"{'group':<9} {'case':<34} {'impl':<24} {'per call':>8} {'ms':>10} {'limit ms':>9} "
          f"{'of limit':>6}")
    if "dense" in args.only:
        dense_rows(bench, [10_000, 100_000] if args.quick else [10_000, 1_000_000, 16_000_000])
    if "dense" in args.only:
        compute_floor_rows(bench, threads)
    if "sweep" in args.only:
        sweep_rows(bench, SWEEP_SIZES[:3] if args.quick else SWEEP_SIZES,
                   [tf.float32] if args.quick else [tf.float32, tf.float16, tf.bfloat16,
                                                    tf.float64])
    if "sparse" in args.only:
        sparse_rows(bench, [4096] if args.quick else [4096, 65536],
                    table_rows=100_000 if args.quick else 1_000_000)
    if "many" in args.only:
        many_variable_rows(bench, count=50 if args.quick else 500)
    if "fit" in args.only:
        fit_rows(bench, args.quick)
    if "extras" in args.only:
        extras_rows(bench, args.quick)
    if "xla" in args.only:
        xla_rows(bench, args.quick)
    if "compact" in args.only:
        compact_rows(bench, args.quick)
    targets = summarize(bench.rows)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(dict(machine=machine(), date=time.strftime("%Y-%m-%d"), rows=bench.rows,
                       targets=targets), f, indent=1)
    print(f"\nwrote {args.output}")
    from benchmarks import plot  # matplotlib: only here, where a picture is drawn
    plot.main([args.output])
    return 0


if __name__ == "__main__":
    sys.exit(main())
