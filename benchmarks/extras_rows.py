"""Rows of Keras's steps around the update (weight decay, EMA, global
clipping): stock Keras runs each as its own pass over every variable, ours
runs them in the update's pass (issue table: one 16.8M-element float32
variable, momentum 0.9, one update per tf.function call for both)."""
import keras
import numpy as np
import tensorflow as tf

import keras_optimizer
from benchmarks.timing import Timed, best_in_turn

OPTIONS = [
    ("none", {}),
    ("weight_decay=0.01", dict(weight_decay=0.01)),
    ("use_ema=True", dict(use_ema=True)),
    ("global_clipnorm=1.0", dict(global_clipnorm=1.0)),
    ("all three", dict(weight_decay=0.01, use_ema=True, global_clipnorm=1.0)),
]


def limit(probe, n, options):
    """(bytes, seconds) of what a step must move at the probe's speed: the
    update pass reads the gradient and reads and writes var, ms, mom and the
    EMA slot; a norm is one more read of the gradient, a pass of its own."""
    arrays = 5 if options.get("use_ema") else 4  # read all, write all but the gradient
    update_bytes = 4 * n * (2 * arrays - 1)
    seconds = probe.seconds(update_bytes, arrays, fresh=True)
    if "global_clipnorm" in options or "clipnorm" in options:
        return update_bytes + 4 * n, seconds + probe.seconds(4 * n, 1, fresh=True)
    return update_bytes, seconds


def extras_rows(bench, quick):
    n = 1 << 20 if quick else 1 << 24
    grad = tf.constant(np.random.default_rng(3).standard_normal(n).astype(np.float32))
    repeats = 5 if quick else 10
    for label, options in OPTIONS:
        case = f"{n:.3g} {label}".replace("e+0", "e")
        timed = {}
        for name, cls in (("keras stock", keras.optimizers.RMSprop),
                          ("ours (keras)", keras_optimizer.RMSprop)):
            var = keras.Variable(np.full(n, 0.5, np.float32))
            opt = cls(learning_rate=0.001, momentum=0.9, **options)
            opt.build([var])
            timed[name] = Timed(lambda opt=opt, var=var: opt.apply_gradients([(grad, var)]), 1)
        # Both sides and the limit measured in turn, best of three rounds:
        # the limit under the same load as the rows it bounds.
        measures = {name: (lambda t=t: t.seconds(repeats)) for name, t in timed.items()}
        limits = []  # (bytes, seconds) of each round
        measures["limit"] = lambda: limits.append(limit(bench.probe, n, options)) or limits[-1][1]
        times = best_in_turn(measures)
        num_bytes, limit_seconds = limits[0][0], times["limit"]
        bench.add("extras", case, "keras stock", times["keras stock"], num_bytes,
                  limit_seconds=limit_seconds, per_call=1,
                  ours_speedup=times["keras stock"] / times["ours (keras)"])
        bench.add("extras", case, "ours (keras)", times["ours (keras)"], num_bytes,
                  limit_seconds=limit_seconds, per_call=1)
