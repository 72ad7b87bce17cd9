"""The `many` rows of `make bench`: many small variables updated by one
grouped op against one op per variable, at the op level and through Keras."""
import keras
import numpy as np
import tensorflow as tf

import keras_optimizer
import rmsprop_op
from benchmarks.op_rows import HYPER
from benchmarks.timing import Timed, best_in_turn, median_seconds


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
