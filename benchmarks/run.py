"""`make bench`: the fused RMSProp update against its peers and the
memory-bandwidth limit, all measured in one process and one run.

Each row is the median of repeated timed runs after warm-up, the best of
three rounds in which every implementation of a case and its limit are
measured in turn. "limit" is a
streaming kernel (benchmarks/bandwidth_probe.c) moving the same bytes with
no arithmetic; "of limit" is limit time / row time. Results are printed as a
table and written to benchmarks/results/run.json (not tracked); the results
the documentation shows are benchmarks/results/published.json, a run copied
there on purpose.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_optimizer  # noqa: E402
import rmsprop_op  # noqa: E402

from benchmarks.extras_rows import extras_rows  # noqa: E402
from benchmarks.fit_rows import fit_rows  # noqa: E402
from benchmarks.timing import (HERE, BandwidthProbe, Bench, Timed, best_in_turn,  # noqa: E402
                               median_seconds, repeats_for, updates_per_call)

HYPER = dict(lr=0.001, rho=0.9, epsilon=1e-7)


def _slot_count(momentum, centered):
    return 2 + (momentum > 0) + centered  # var, ms, [mom], [mg]


def dense_rows(bench, sizes):
    for n in sizes:
        for momentum in (0.0, 0.9):
            for centered in (False, True):
                case = f"{n:.2g} m={momentum} c={int(centered)}".replace("e+0", "e")
                slots = _slot_count(momentum, centered)
                num_arrays = slots + 1
                num_bytes = 4 * n * (2 * slots + 1)
                rng = np.random.default_rng(0)
                grad = tf.constant(rng.standard_normal(n).astype(np.float32))
                repeats = repeats_for(num_bytes)
                k = updates_per_call(n)

                def variables(dtype=tf.float32):
                    return [tf.Variable(tf.fill([n], tf.constant(0.5, dtype))) for _ in range(4)]

                var, ms, mg, mom = variables()
                mom_or_none = mom if momentum > 0 else None
                if centered:
                    ours = Timed(lambda: rmsprop_op.apply_centered_rmsprop(
                        var, mg, ms, mom_or_none, grad, momentum=momentum, **HYPER), k)
                else:
                    ours = Timed(lambda: rmsprop_op.apply_rmsprop(
                        var, ms, mom_or_none, grad, momentum=momentum, **HYPER), k)
                timed = {"ours (op)": ours}

                # TensorFlow's op always reads and writes a momentum slot.
                tvar, tms, tmg, tmom = variables()
                hyper = {k: tf.constant(v, tf.float32) for k, v in
                         dict(HYPER, momentum=momentum).items()}
                if centered:
                    timed["tf raw op"] = Timed(lambda: tf.raw_ops.ResourceApplyCenteredRMSProp(
                        var=tvar.handle, mg=tmg.handle, ms=tms.handle, mom=tmom.handle,
                        grad=grad, **hyper), k)
                else:
                    timed["tf raw op"] = Timed(lambda: tf.raw_ops.ResourceApplyRMSProp(
                        var=tvar.handle, ms=tms.handle, mom=tmom.handle, grad=grad, **hyper), k)

                for name, cls in (("keras stock", keras.optimizers.RMSprop),
                                  ("ours (keras)", keras_optimizer.RMSprop)):
                    kvar = keras.Variable(np.full(n, 0.5, np.float32))
                    opt = cls(learning_rate=HYPER["lr"], momentum=momentum, centered=centered)
                    opt.build([kvar])
                    timed[name] = Timed(lambda opt=opt, kvar=kvar: opt.apply_gradients(
                        [(grad, kvar)]), k)

                half = momentum > 0 and not centered
                if half:
                    for dtype in (tf.float16, tf.bfloat16):
                        hvar, hms, _, hmom = variables(dtype)
                        hgrad = tf.cast(grad, dtype)
                        timed[f"ours (op) {dtype.name}"] = Timed(
                            lambda hvar=hvar, hms=hms, hmom=hmom, hgrad=hgrad: rmsprop_op.apply_rmsprop(
                                hvar, hms, hmom, hgrad, momentum=momentum, **HYPER), k)

                # Every implementation and the limit in turn, best of three rounds.
                measures = {name: (lambda t=t: t.seconds(repeats)) for name, t in timed.items()}
                measures["limit"] = lambda: bench.probe.seconds(num_bytes, num_arrays, fresh=True)
                if half:
                    # Same element count, half the bytes: the probe for half
                    # the bytes is the limit.
                    measures["half limit"] = lambda: bench.probe.seconds(
                        num_bytes // 2, num_arrays, fresh=True)
                best = best_in_turn(measures)
                t_ours = best["ours (op)"]
                for name in timed:
                    row = dict(per_call=k)
                    if name != "ours (op)" and not name.startswith("ours (op) "):
                        row["ours_speedup"] = best[name] / t_ours
                    if name.startswith("ours (op) "):
                        bench.add("dense", case, name, best[name], num_bytes // 2, num_arrays,
                                  limit_seconds=best["half limit"],
                                  per_byte_vs_float32=(t_ours / 2) / best[name], **row)
                    else:
                        bench.add("dense", case, name, best[name], num_bytes, num_arrays,
                                  limit_seconds=best["limit"], **row)


SWEEP_SIZES = [100, 1_000, 10_000, 100_000, 1_000_000, 16_000_000]
# (momentum, centered, momentum slot passed): every variant of the update.
SWEEP_VARIANTS = [(0.0, False, False), (0.0, False, True), (0.9, False, True),
                  (0.0, True, False), (0.0, True, True), (0.9, True, True)]


def sweep_rows(bench, sizes, dtypes):
    """Our op against TensorFlow's (which always has a momentum slot) at every
    size, variant and dtype, the same number of updates per call for both."""
    for dtype in dtypes:
        for n in sizes:
            grad = tf.cast(tf.constant(np.random.default_rng(0).standard_normal(n)), dtype)
            for momentum, centered, with_slot in SWEEP_VARIANTS:
                case = (f"{dtype.name} {n:.2g} m={momentum} c={int(centered)} "
                        f"mom slot={int(with_slot)}").replace("e+0", "e")
                k = updates_per_call(n)
                repeats = 10 if n >= 1e6 else 30
                fill = lambda: tf.Variable(tf.fill([n], tf.constant(0.5, dtype)))  # noqa: E731
                var, ms, mg, mom = fill(), fill(), fill(), fill()
                ours = Timed(lambda: rmsprop_op.update(
                    var, ms, grad, mg=mg if centered else None, mom=mom if with_slot else None,
                    momentum=momentum, **HYPER), k)
                tvar, tms, tmg, tmom = fill(), fill(), fill(), fill()
                hyper = {name: tf.constant(v, dtype)
                         for name, v in dict(HYPER, momentum=momentum).items()}
                if centered:
                    theirs = lambda: tf.raw_ops.ResourceApplyCenteredRMSProp(  # noqa: E731
                        var=tvar.handle, mg=tmg.handle, ms=tms.handle, mom=tmom.handle,
                        grad=grad, **hyper)
                else:
                    theirs = lambda: tf.raw_ops.ResourceApplyRMSProp(  # noqa: E731
                        var=tvar.handle, ms=tms.handle, mom=tmom.handle, grad=grad, **hyper)
                theirs = Timed(theirs, k)
                best = best_in_turn({"ours": lambda: ours.seconds(repeats),
                                     "tf": lambda: theirs.seconds(repeats)})
                bench.add("sweep", case, "ours (op)", best["ours"], per_call=k)
                bench.add("sweep", case, "tf raw op", best["tf"], per_call=k,
                          ours_speedup=best["tf"] / best["ours"])


def compute_floor_rows(bench, threads, n=32_768, momentum=0.9):
    """The update on data that stays in L2 (under 1 MB, updated again and
    again) on one thread: no wait for memory and no thread start-up, so the
    time is the arithmetic (sqrt and division of every element) and the
    conversions, the floor under any row of the same dtype. It runs in a
    child process, since the thread count is fixed once TensorFlow starts."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--compute-floor-worker",
                          str(n), str(momentum)], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(HERE)).stdout
    case = f"{n:.2g} m={momentum} in cache, 1 thread".replace("e+0", "e")
    for name, seconds in json.loads(out.strip().splitlines()[-1]).items():
        bench.add("floor", case, f"ours (op) {name}", seconds, None, None,
                  ns_per_element=seconds / n * 1e9, threads_of_run=threads)


def _compute_floor_worker(n, momentum):
    tf.config.threading.set_intra_op_parallelism_threads(1)
    grad = tf.constant(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    result = {}
    for dtype in (tf.float32, tf.float16, tf.bfloat16):
        var, ms, mom = [tf.Variable(tf.fill([n], tf.constant(0.5, dtype))) for _ in range(3)]
        g = tf.cast(grad, dtype)
        result[dtype.name] = Timed(lambda: rmsprop_op.apply_rmsprop(
            var, ms, mom, g, momentum=momentum, **HYPER), 200).seconds(15)
    print(json.dumps(result))
    return 0


def sparse_rows(bench, rows_list, table_rows=1_000_000, dim=64):
    rng = np.random.default_rng(1)
    table = [tf.Variable(tf.fill([table_rows, dim], 0.5)) for _ in range(3)]
    var, ms, mom = table
    tvar, tms, tmom = [tf.Variable(tf.fill([table_rows, dim], 0.5)) for _ in range(3)]
    for num in rows_list:
        indices = tf.constant(rng.integers(0, table_rows, size=num).astype(np.int32))
        values = tf.constant(rng.standard_normal((num, dim)).astype(np.float32))
        case = f"{num} rows of {table_rows // 1000}Kx{dim} m=0.9"
        # Touched bytes: var, ms, mom read and written, grad read, indices.
        num_bytes = num * dim * 4 * 7 + num * 4
        repeats = 30
        k = updates_per_call(num * dim)
        timed = {"ours (op)": (Timed(lambda: rmsprop_op.sparse_apply_rmsprop(
            var, ms, mom, values, indices, momentum=0.9, **HYPER), k), repeats)}
        hyper = {k: tf.constant(v, tf.float32) for k, v in dict(HYPER, momentum=0.9).items()}
        timed["tf raw op"] = (Timed(lambda: tf.raw_ops.ResourceSparseApplyRMSProp(
            var=tvar.handle, ms=tms.handle, mom=tmom.handle, grad=values, indices=indices,
            **hyper), k), repeats)
        grad = tf.IndexedSlices(values, indices, tf.constant([table_rows, dim]))
        for name, cls in (("keras stock", keras.optimizers.RMSprop),
                          ("ours (keras)", keras_optimizer.RMSprop)):
            kvar = keras.Variable(np.full((table_rows, dim), 0.5, np.float32))
            opt = cls(learning_rate=HYPER["lr"], momentum=0.9)
            opt.build([kvar])
            # The same k as every row of the case; stock Keras densifies the
            # table, so fewer (equally weighted) repeats of it.
            timed[name] = (Timed(lambda opt=opt, kvar=kvar: opt.apply_gradients([(grad, kvar)]),
                                 k), 5 if name == "keras stock" else repeats)
        measures = {name: (lambda t=t, r=r: t.seconds(r)) for name, (t, r) in timed.items()}
        measures["limit"] = lambda: bench.probe.seconds(num_bytes, 4, fresh=True)
        best = best_in_turn(measures)
        t_ours = best["ours (op)"]
        for name in timed:
            speedup = {} if name == "ours (op)" else dict(ours_speedup=best[name] / t_ours)
            bench.add("sparse", case, name, best[name], num_bytes, 4,
                      limit_seconds=best["limit"], per_call=k, **speedup)
        del timed, measures


class PerVariableRMSprop(keras_optimizer.RMSprop):
    """Ours without the grouped op: one fused op per variable, as under a
    distribution strategy."""

    def _apply_updates(self, distribution, grads_and_vars, learning_rate):
        return self._per_variable_updates(distribution, grads_and_vars, learning_rate)


def many_variable_rows(bench, count=500, size=1000):
    case = f"{count} vars x {size} m=0.9"
    rng = np.random.default_rng(2)
    grads = [tf.constant(rng.standard_normal(size).astype(np.float32)) for _ in range(count)]
    num_bytes = count * size * 4 * 7

    # One update per tf.function call for every implementation, as
    # model.fit calls its train function once per step: the cost of calling
    # a function that captures thousands of variables is part of a step.
    per_call = 1

    def keras_step(cls, grouped=True):
        variables = [keras.Variable(np.full(size, 0.5, np.float32)) for _ in range(count)]
        if not grouped:
            cls = PerVariableRMSprop
        opt = cls(learning_rate=HYPER["lr"], momentum=0.9)
        opt.build(variables)
        return Timed(lambda: opt.apply_gradients(zip(grads, variables)), per_call)

    # Op level: one grouped op against `count` separate ops in one graph.
    slots = [[tf.Variable(tf.fill([size], 0.5)) for _ in range(3)] for _ in range(count)]
    t_group_op = Timed(lambda: rmsprop_op.group_apply_rmsprop(
        [s[0] for s in slots], None, [s[1] for s in slots], [s[2] for s in slots], grads,
        momentum=0.9, **HYPER), per_call).seconds(30)
    bench.add("many", case, "ours grouped (op)", t_group_op, num_bytes, 4, per_call=per_call)

    def separate_ops():
        for (var, ms, mom), grad in zip(slots, grads):
            rmsprop_op.apply_rmsprop(var, ms, mom, grad, momentum=0.9, **HYPER)
    t = Timed(separate_ops, per_call).seconds(30)
    bench.add("many", case, "ours per-var (op)", t, num_bytes, 4, per_call=per_call,
              grouped_speedup=t / t_group_op)
    # Eagerly, as in a custom loop without tf.function: each op pays its
    # dispatch (the cost this comparison was first made for).
    t_group_eager = median_seconds(lambda: rmsprop_op.group_apply_rmsprop(
        [s[0] for s in slots], None, [s[1] for s in slots], [s[2] for s in slots], grads,
        momentum=0.9, **HYPER), 30)
    bench.add("many", case, "ours grouped (op, eager)", t_group_eager, num_bytes, 4, per_call=0)
    t = median_seconds(separate_ops, 10)
    bench.add("many", case, "ours per-var (op, eager)", t, num_bytes, 4, per_call=0,
              grouped_speedup=t / t_group_eager)

    # The three Keras steps in turn, best of three rounds.
    keras_steps = {"ours grouped (keras)": keras_step(keras_optimizer.RMSprop),
                   "ours per-var (keras)": keras_step(keras_optimizer.RMSprop, grouped=False),
                   "keras stock": keras_step(keras.optimizers.RMSprop)}
    best = best_in_turn({name: (lambda t=t: t.seconds(30)) for name, t in keras_steps.items()})
    t_grouped = best["ours grouped (keras)"]
    bench.add("many", case, "ours grouped (keras)", t_grouped, num_bytes, 4, per_call=per_call)
    for name in ("ours per-var (keras)", "keras stock"):
        bench.add("many", case, name, best[name], num_bytes, 4, per_call=per_call,
                  grouped_speedup=best[name] / t_grouped)


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


def summarize(rows):
    def find(group, case_prefix, impl):
        for r in rows:
            if r["group"] == group and r["case"].startswith(case_prefix) and r["impl"] == impl:
                return r
        return None

    checks = []
    largest = max((r["case"].split()[0] for r in rows if r["group"] == "dense"),
                  key=float, default=None)
    for momentum in ("m=0.0", "m=0.9"):
        case = f"{largest} {momentum} c=0"
        ours = find("dense", case, "ours (op)")
        if ours is None:
            continue
        tf_row = find("dense", case, "tf raw op")
        stock = find("dense", case, "keras stock")
        checks.append((f"dense {case}: ours reaches >= 85% of the bandwidth limit",
                       ours["of_limit"], ours["of_limit"] >= 0.85))
        checks.append((f"dense {case}: >= 1.5x TF raw op", tf_row["ours_speedup"],
                       tf_row["ours_speedup"] >= 1.5))
        checks.append((f"dense {case}: >= 3x stock Keras", stock["ours_speedup"],
                       stock["ours_speedup"] >= 3))
    sparse = find("sparse", "4096 rows", "ours (op)")
    if sparse:
        tf_row = find("sparse", "4096 rows", "tf raw op")
        stock = find("sparse", "4096 rows", "keras stock")
        checks.append(("sparse 4096 rows: >= 20x TF raw sparse op", tf_row["ours_speedup"],
                       tf_row["ours_speedup"] >= 20))
        checks.append(("sparse 4096 rows: >= 200x stock Keras", stock["ours_speedup"],
                       stock["ours_speedup"] >= 200))
        checks.append(("sparse 4096 rows: within 3x of the bandwidth limit", sparse["of_limit"],
                       sparse["of_limit"] >= 1 / 3))
    for level in ("op", "op, eager", "keras"):
        per_var = find("many", "", f"ours per-var ({level})")
        if per_var:
            checks.append((f"{per_var['case']}: grouped >= 10x per-variable ops ({level})",
                           per_var["grouped_speedup"], per_var["grouped_speedup"] >= 10))
    sweep = [r for r in rows if r["group"] == "sweep" and r["impl"] == "tf raw op"]
    if sweep:
        slowest = min(sweep, key=lambda r: r["ours_speedup"])
        checks.append((f"sweep: never slower than TensorFlow's op (slowest: {slowest['case']})",
                       slowest["ours_speedup"], slowest["ours_speedup"] >= 0.95))
    for r in rows:
        if r["group"] == "fit" and r["impl"] == "ours (keras)":
            wanted = 4.0 if r["case"].startswith("Embedding") else (
                1.5 if r["case"].startswith("deep MLP") else 1.0)
            checks.append((f"fit {r['case']}: >= {wanted}x stock Keras per step",
                           r["ours_speedup"], r["ours_speedup"] >= wanted))
            checks.append((f"fit {r['case']}: final loss agrees with stock Keras (1 = yes)",
                           float(r["losses_agree"]), r["losses_agree"]))
    for r in rows:
        if r["group"] == "extras" and r["impl"] == "keras stock":
            ours = find("extras", r["case"], "ours (keras)")
            label = r["case"].split(" ", 1)[1]
            if label == "none":
                continue
            wanted = 4.0 if label == "all three" else 3.5
            checks.append((f"extras {r['case']}: >= {wanted}x stock Keras", r["ours_speedup"],
                           r["ours_speedup"] >= wanted))
            if label == "all three":
                checks.append((f"extras {r['case']}: ours >= 80% of the bandwidth limit",
                               ours["of_limit"], ours["of_limit"] >= 0.8))
    # The arithmetic alone, on every thread of the run: the in-cache time of
    # one thread divided by the thread count (1.0: compute-bound).
    floors = {r["impl"]: r["ns_per_element"] / r["threads_of_run"]
              for r in rows if r["group"] == "floor"}
    for r in rows:
        if "per_byte_vs_float32" in r and r["impl"] in floors:
            n = float(r["case"].split()[0])
            r["of_compute_floor"] = floors[r["impl"]] * n * 1e-9 / (r["ms"] * 1e-3)
    for r in rows:
        if "per_byte_vs_float32" in r:
            checks.append((f"{r['case']} {r['impl']}: per byte no slower than float32",
                           r["per_byte_vs_float32"], r["per_byte_vs_float32"] >= 0.95))

    print("\nTargets (ratios from this run):")
    for description, value, ok in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {description}: {value:.2f}")
    for r in rows:
        if "of_compute_floor" in r:
            print(f"  ({r['case']} {r['impl']} runs at {r['of_compute_floor']:.2f} of its "
                  "in-cache, arithmetic-bound speed)")
    return [dict(target=d, value=v, met=bool(ok)) for d, v, ok in checks]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=["dense", "sweep", "sparse", "many", "fit", "extras"],
                        default=["dense", "sweep", "sparse", "many", "fit", "extras"])
    parser.add_argument("--output", default=os.path.join(HERE, "results", "run.json"))
    parser.add_argument("--compute-floor-worker", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compute_floor_worker:
        return _compute_floor_worker(int(args.compute_floor_worker[0]),
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
