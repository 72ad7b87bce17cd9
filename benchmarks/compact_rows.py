"""The `compact` rows of `make bench`: RMSprop's state kept in bfloat16 or
block-wise in 8 bits (`keras_optimizer.RMSprop(state_dtype=...)`, formats in
rmsprop_op/compact_state.py) against float32 state: the state's bytes per
parameter, the speed of a dense and a sparse update, and Keras's steps
around an int8 update fused into its pass against Keras's own passes."""
import itertools

import keras
import numpy as np
import tensorflow as tf

import keras_optimizer
from benchmarks.timing import Timed, best_in_turn, updates_per_call

# (implementation, state_dtype), float32 state first: the others' ratios are
# against it.
FORMATS = [("float32 state", None), ("bfloat16 state", "bfloat16"), ("int8 state", "int8")]
FLOAT32 = FORMATS[0][0]
# Bytes a parameter's slot moves per element, by format: float32, bfloat16,
# int8 codes plus one float32 scale per block of 256.
SLOT_BYTES = {None: 4.0, "bfloat16": 2.0, "int8": 1.0 + 4.0 / 256}
HYPER = dict(learning_rate=0.001, momentum=0.9)


def compact_rows(bench, quick):
    table_rows = 100_000 if quick else 1_000_000
    memory_rows(bench, table_rows)
    dense_rows(bench, 100_000 if quick else 1 << 24)
    sparse_rows(bench, table_rows, 1024 if quick else 4096)
    extras_rows(bench, 100_000 if quick else 1 << 24)


def _case(n):
    return f"{n:.3g}".replace("e+0", "e")


def _table(rows, dim):
    return (f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}K") + f"x{dim}"


def state_bytes(optimizer):
    """Bytes of every variable the optimizer holds (slots, int8 scales, the
    step counter and the learning rate)."""
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in optimizer.variables)


def memory_rows(bench, table_rows, dim=64):
    """An Embedding-sized table's state, momentum and centered (three slots),
    counted from `optimizer.variables` after `optimizer.build`."""
    var = keras.Variable(np.zeros((table_rows, dim), np.float32))
    case = f"state of {_table(table_rows, dim)} m=0.9 c=1"
    per_parameter = {}
    for name, state_dtype in FORMATS:
        opt = keras_optimizer.RMSprop(centered=True, state_dtype=state_dtype, **HYPER)
        opt.build([var])
        per_parameter[name] = state_bytes(opt) / (table_rows * dim)
        del opt
    for name, _ in FORMATS:
        bench.add("compact", case, name, None, per_call=None,
                  state_bytes_per_parameter=per_parameter[name],
                  smaller_than_float32=per_parameter[FLOAT32] / per_parameter[name])


def _limit_bytes(elements, state_dtype, slots=2):
    # The gradient read; var and each slot read and written.
    return elements * (4 + 2 * 4 + 2 * slots * SLOT_BYTES[state_dtype])


def dense_rows(bench, n):
    """One float32 variable of n elements, momentum 0.9, through
    `optimizer.apply` (Keras 3), one update per tf.function call on every
    side (as `fit` makes it); each format and its bandwidth limit (the
    probe moving the bytes that format moves) in turn, best of three
    rounds."""
    grad = tf.constant(np.random.default_rng(3).standard_normal(n).astype(np.float32))
    timed, num_bytes = {}, {}
    for name, state_dtype in FORMATS:
        var = keras.Variable(np.full(n, 0.5, np.float32))
        opt = keras_optimizer.RMSprop(state_dtype=state_dtype, **HYPER)
        opt.build([var])  # before timing
        timed[name] = Timed(lambda opt=opt, var=var: opt.apply([grad], [var]), 1)
        num_bytes[name] = int(_limit_bytes(n, state_dtype))
    repeats = 10 if n > 1e6 else 30
    measures = {name: (lambda t=t: t.seconds(repeats)) for name, t in timed.items()}
    for name, _ in FORMATS:
        measures[f"{name} limit"] = lambda b=num_bytes[name]: bench.probe.seconds(b, 4, fresh=True)
    best = best_in_turn(measures)
    for name, _ in FORMATS:
        extra = {} if name == FLOAT32 else dict(vs_float32_state=best[FLOAT32] / best[name])
        bench.add("compact", f"{_case(n)} m=0.9 dense", name, best[name], num_bytes[name], 4,
                  limit_seconds=best[f"{name} limit"], per_call=1, **extra)


def zipf_ids(rng, count, vocabulary, exponent=1.1):
    """`count` ids of a Zipf distribution over the vocabulary (probability of
    the k-th most frequent id proportional to k**-exponent), the frequent ids
    spread over the table."""
    p = np.arange(1, vocabulary + 1, dtype=np.float64) ** -exponent
    ranks = rng.choice(vocabulary, size=count, p=p / p.sum())
    return rng.permutation(vocabulary)[ranks].astype(np.int32)


# Distinct batches a sparse update cycles through.
SPARSE_BATCHES = 8


def sparse_rows(bench, table_rows, batch, dim=64):
    """An Embedding-style table updated at batches of Zipf-distributed ids
    (duplicates summed, as an Embedding's gradient has them), momentum 0.9,
    through `optimizer.apply` with IndexedSlices gradients; the same updates
    per call on every side. The table is warm: one dense update first gives
    every row's state a value, as rows seen earlier in training have, and
    the updates cycle through SPARSE_BATCHES batches of different ids and
    values. (An int8 update encodes only the batch's rows of a block whose
    other rows keep their codes: codes all 0, rows never updated, or the
    block's scale unchanged. The same batch again and again on a cold table
    would meet only such blocks.) The limit is the probe moving the bytes of
    the gradient and of the touched rows (var and each slot read and
    written; int8: the codes and a scale per 256 elements)."""
    rng = np.random.default_rng(5)
    batches, unique = [], []
    for _ in range(SPARSE_BATCHES):
        ids = zipf_ids(rng, batch, table_rows)
        values = rng.standard_normal((batch, dim)).astype(np.float32)
        batches.append(tf.IndexedSlices(tf.constant(values), tf.constant(ids),
                                        tf.constant([table_rows, dim])))
        unique.append(len(np.unique(ids)))
    unique = int(np.mean(unique))
    case = f"{batch} Zipf ids (~{unique} rows) of {_table(table_rows, dim)} m=0.9, warm"
    k = updates_per_call(batch * dim)
    var = keras.Variable(np.full((table_rows, dim), 0.5, np.float32))
    warm = tf.constant(rng.standard_normal((table_rows, dim)).astype(np.float32))
    timed, num_bytes = {}, {}
    for name, state_dtype in FORMATS:
        opt = keras_optimizer.RMSprop(state_dtype=state_dtype, **HYPER)
        opt.build([var])
        opt.apply([warm], [var])
        # Each traced update takes the next batch.
        timed[name] = Timed(lambda opt=opt, turn=itertools.count():
                            opt.apply([batches[next(turn) % SPARSE_BATCHES]], [var]), k)
        num_bytes[name] = int(_limit_bytes(unique * dim, state_dtype) - unique * dim * 4
                              + batch * dim * 4 + batch * 4)  # the gradient's rows, the ids
    del warm
    measures = {name: (lambda t=t: t.seconds(30)) for name, t in timed.items()}
    for name, _ in FORMATS:
        measures[f"{name} limit"] = lambda b=num_bytes[name]: bench.probe.seconds(b, 4, fresh=True)
    best = best_in_turn(measures)
    for name, _ in FORMATS:
        extra = {} if name == FLOAT32 else dict(vs_float32_state=best[FLOAT32] / best[name])
        bench.add("compact", case, name, best[name], num_bytes[name], 4,
                  limit_seconds=best[f"{name} limit"], per_call=k, **extra)


class KerasPasses(keras_optimizer.RMSprop):
    """Overrides `update_step`, so Keras runs its steps around the update as
    its own passes and calls the update once per variable."""

    def update_step(self, gradient, variable, learning_rate):
        return super().update_step(gradient, variable, learning_rate)


def extras_rows(bench, n):
    """One float32 variable of n elements with int8 state, momentum 0.9,
    weight decay, EMA and global_clipnorm: the steps in the compact op's
    pass (ours) against Keras's passes around the same compact op, one
    update per tf.function call on both sides, in turn, best of three."""
    grad = tf.constant(np.random.default_rng(3).standard_normal(n).astype(np.float32))
    options = dict(state_dtype="int8", weight_decay=0.01, use_ema=True, global_clipnorm=1.0,
                   **HYPER)
    timed = {}
    for name, cls in (("int8, steps fused", keras_optimizer.RMSprop),
                      ("int8, Keras's passes", KerasPasses)):
        var = keras.Variable(np.full(n, 0.5, np.float32))
        opt = cls(**options)
        opt.build([var])
        timed[name] = Timed(lambda opt=opt, var=var: opt.apply([grad], [var]), 1)
    best = best_in_turn({name: (lambda t=t: t.seconds(10 if n > 1e6 else 30))
                         for name, t in timed.items()})
    case = f"{_case(n)} m=0.9 wd+ema+gcn"
    bench.add("compact", case, "int8, Keras's passes", best["int8, Keras's passes"], None,
              per_call=1)
    bench.add("compact", case, "int8, steps fused", best["int8, steps fused"], None, per_call=1,
              fused_speedup=best["int8, Keras's passes"] / best["int8, steps fused"])
