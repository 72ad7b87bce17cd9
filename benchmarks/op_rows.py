"""The op-level rows of `make bench`: dense updates against TensorFlow's
training ops, stock Keras and the bandwidth limit; the sweep over sizes,
variants and dtypes; the in-cache compute floor."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_optimizer
import rmsprop_op
from benchmarks.timing import HERE, Timed, best_in_turn, repeats_for, updates_per_call

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


def compute_floor_worker(n, momentum):
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
