"""The `xla` rows of `make bench`: the update and whole training steps
compiled by XLA (`jit_compile=True`), where our ops are custom calls of
their own CPU kernels (rmsprop_op.XLA_KERNELS), against stock Keras's
RMSprop compiled by XLA, and both without XLA."""
import keras
import numpy as np
import tensorflow as tf

import keras_optimizer
import rmsprop_op
from benchmarks.fit_rows import _fit_models, timed_fit
from benchmarks.timing import Timed, best_in_turn

OURS = "ours (keras), XLA"
# (implementation, optimizer class, jit_compile), ours under XLA first: the
# others' ours_speedup is their time / its time.
DENSE_SIDES = [(OURS, keras_optimizer.RMSprop, True),
               ("keras stock, XLA", keras.optimizers.RMSprop, True),
               ("ours (keras)", keras_optimizer.RMSprop, None),
               ("keras stock", keras.optimizers.RMSprop, None)]
FIT_CASES = ("deep MLP", "Embedding")
# Relative difference allowed between the final losses of the two fits (as
# in fit_rows): XLA fuses and reorders the float32 arithmetic of the forward
# and backward passes, which moves a loss in its 7th digit, and on the
# Embedding model stock Keras updates the whole (densified) table where ours
# updates the rows of the batch, which moves it in its 5th.
LOSS_TOLERANCE = 1e-3


def xla_rows(bench, quick):
    xla_kernels = "CPU" in rmsprop_op.XLA_KERNELS
    _dense_rows(bench, 100_000 if quick else 1 << 24, xla_kernels)
    _fit_xla_rows(bench, quick, xla_kernels)


def _dense_rows(bench, n, xla_kernels, momentum=0.9):
    """One float32 variable of n elements, momentum 0.9: `optimizer.apply`
    (Keras 3) in one tf.function call per update on every side, compiled by
    XLA or not. One update per call, also at small sizes: XLA would fuse
    unrolled updates of stock Keras's formula into one pass, which a training
    step never makes."""
    case = f"{n:.3g} m={momentum}".replace("e+0", "e")
    grad = tf.constant(np.random.default_rng(3).standard_normal(n).astype(np.float32))
    num_bytes, num_arrays = 4 * n * 7, 4  # grad read; var, ms, mom read and written
    timed = {}
    for name, cls, jit_compile in DENSE_SIDES:
        var = keras.Variable(np.full(n, 0.5, np.float32))
        opt = cls(learning_rate=0.001, momentum=momentum)
        opt.build([var])  # before timing: slots made on the side's own variable
        timed[name] = Timed(lambda opt=opt, var=var: opt.apply([grad], [var]), 1,
                            jit_compile=jit_compile)
    # Every side and the limit in turn, best of three rounds.
    repeats = 10 if n > 1e6 else 30
    measures = {name: (lambda t=t: t.seconds(repeats)) for name, t in timed.items()}
    measures["limit"] = lambda: bench.probe.seconds(num_bytes, num_arrays, fresh=True)
    best = best_in_turn(measures)
    for name, _, jit_compile in DENSE_SIDES:
        row = dict(per_call=1, jit_compile=bool(jit_compile))
        if name == OURS:
            row["xla_kernels"] = xla_kernels
        else:
            row["ours_speedup"] = best[name] / best[OURS]
        bench.add("xla", case, name, best[name], num_bytes, num_arrays,
                  limit_seconds=best["limit"], **row)


def _fit_xla_rows(bench, quick, xla_kernels):
    """model.fit(..., jit_compile=True) of fit_rows's models, stock Keras's
    RMSprop against ours, timed as fit_rows times them (`timed_fit`), in
    turn, the faster of two rounds each. Stock Keras cannot compile a sparse
    (Embedding) gradient: its sparse division guards divisors of zero with a
    tf.cond, so the quotient's row count is a tf.cond output, and densifying
    it for the momentum needs that count at compile time (Keras 3.15). Where
    it fails, its row is stock Keras without XLA, "keras stock" (what it can
    run that model with), and carries the error."""
    for case, entry in _fit_models(quick).items():
        if not case.startswith(FIT_CASES):
            continue
        final_loss = {}
        stock = dict(name="keras stock, XLA", jit_compile=True, error=None)

        def fit_ours():
            seconds, final_loss[OURS] = timed_fit(entry, keras_optimizer.RMSprop,
                                                  jit_compile=True)
            return seconds

        def fit_stock():
            try:
                seconds, final_loss["stock"] = timed_fit(entry, keras.optimizers.RMSprop,
                                                         jit_compile=stock["jit_compile"])
            except tf.errors.InvalidArgumentError as error:  # tf2xla: cannot compile it
                if stock["jit_compile"] is not True:
                    raise
                lines = error.message.strip().splitlines()
                stock.update(name="keras stock", jit_compile="auto", error=next(
                    (line for line in lines if "compile-time constant" in line), lines[0])[:200])
                print(f"(xla: stock Keras fails to compile {case} under XLA: {stock['error']} "
                      "Its row is without XLA.)", flush=True)
                return fit_stock()
            return seconds

        # The two fits in turn, best of two rounds.
        best = best_in_turn({"stock": fit_stock, OURS: fit_ours}, rounds=2)
        loss_ours, loss_stock = final_loss[OURS], final_loss["stock"]
        difference = abs(loss_ours - loss_stock) / max(abs(loss_stock), 1e-12)
        bench.add("xla", case, stock["name"], best["stock"], per_call=1,
                  jit_compile=stock["jit_compile"] is True, final_loss=loss_stock,
                  ours_speedup=best["stock"] / best[OURS],
                  **({"xla_error": stock["error"]} if stock["error"] else {}))
        bench.add("xla", case, OURS, best[OURS], per_call=1, jit_compile=True,
                  xla_kernels=xla_kernels, final_loss=loss_ours,
                  loss_difference=difference, losses_agree=difference <= LOSS_TOLERANCE)
