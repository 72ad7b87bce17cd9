"""The sparse rows of `make bench`: one Embedding-sized table updated at a
batch of rows, by our op, TensorFlow's sparse op and both Keras optimizers."""
import keras
import numpy as np
import tensorflow as tf

import keras_optimizer
import rmsprop_op
from benchmarks.op_rows import HYPER
from benchmarks.timing import Timed, best_in_turn, updates_per_call


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
