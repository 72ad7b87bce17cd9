"""Rows of Keras's steps around the update (weight decay, EMA, global
clipping): stock Keras runs each as its own pass over every variable, ours
runs them in the update's pass (issue table: one 16.8M-element float32
variable, momentum 0.9, one update per tf.function call for both)."""
import keras
import numpy as np
import tensorflow as tf

import keras_optimizer
from benchmarks.timing import Timed

OPTIONS = [
    ("none", {}),
    ("weight_decay=0.01", dict(weight_decay=0.01)),
    ("use_ema=True", dict(use_ema=True)),
    ("global_clipnorm=1.0", dict(global_clipnorm=1.0)),
    ("all three", dict(weight_decay=0.01, use_ema=True, global_clipnorm=1.0)),
]


def moved_bytes(n, options):
    """What one step must move: var, ms and mom read and written, the
    gradient read (twice with a global norm: once for the norm, once for the
    update), the EMA slot read and written."""
    arrays = 2 * 3 + 1
    if "global_clipnorm" in options or "clipnorm" in options:
        arrays += 1
    if options.get("use_ema"):
        arrays += 2
    return 4 * n * arrays, arrays


def extras_rows(bench, quick):
    n = 1 << 20 if quick else 1 << 24
    grad = tf.constant(np.random.default_rng(3).standard_normal(n).astype(np.float32))
    repeats = 5 if quick else 10
    for label, options in OPTIONS:
        case = f"{n:.3g} {label}".replace("e+0", "e")
        num_bytes, arrays = moved_bytes(n, options)
        times = {}
        for name, cls in (("keras stock", keras.optimizers.RMSprop),
                          ("ours (keras)", keras_optimizer.RMSprop)):
            var = keras.Variable(np.full(n, 0.5, np.float32))
            opt = cls(learning_rate=0.001, momentum=0.9, **options)
            opt.build([var])
            times[name] = Timed(lambda: opt.apply_gradients([(grad, var)]), 1).seconds(repeats)
        bench.add("extras", case, "keras stock", times["keras stock"], num_bytes, arrays,
                  per_call=1, ours_speedup=times["keras stock"] / times["ours (keras)"])
        bench.add("extras", case, "ours (keras)", times["ours (keras)"], num_bytes, arrays,
                  per_call=1)
