"""One drawn example of the Keras 3 differential harness, run with either
optimizer (tests/test_differential.py): the variables and gradients, the
calls the pattern names, the snapshots compared, and the float32 stand-in for
half precision."""
import keras
import numpy as np
import tensorflow as tf

import keras_optimizer
from tests.keras3_draws import make_optimizer

HALF = ("float16", "bfloat16")


def half_positions(pattern):
    return {i for i, (dtype, _, _) in enumerate(pattern["variables"]) if dtype in HALF}


def _rounded(x, dtype):
    """x rounded to `dtype` and back to float32."""
    return tf.cast(tf.cast(x, dtype), tf.float32)


def _make_variables(pattern, half_as_float32):
    rng = np.random.default_rng(pattern["seed"])
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    made = []
    for i, (dtype, shape, device) in enumerate(pattern["variables"]):
        values = rng.standard_normal(shape).astype(np.float32)
        if half_as_float32 and dtype in HALF:
            values, dtype = _rounded(values, dtype).numpy(), "float32"
        with tf.device(devices[device]):
            made.append(keras.Variable(values, dtype=dtype, name=f"v{i}"))
    return made


def _gradient(kind, shape, dtype, rng, step):
    # Every fourth step all zero: accumulators still decay.
    scale = 0.0 if step % 4 == 3 else rng.choice([0.01, 1.0, 3.0])
    values = (rng.standard_normal(shape) * scale).astype(np.float32)
    if kind == "none":
        return None
    if kind == "numpy":
        return values.astype(keras.backend.standardize_dtype(dtype))
    if kind == "list":
        return values.tolist()
    if kind == "other_dtype":
        return tf.constant(values, "float64" if dtype == "float32" else "float32")
    if kind.startswith("sparse"):
        rows = shape[0]
        if kind == "sparse_all_rows":
            indices = rng.permutation(rows)
        elif kind == "sparse_duplicates":
            indices = np.concatenate([rng.permutation(rows), rng.integers(0, rows, 2)])
        else:  # some rows, each once (stock mishandles duplicates, see check)
            indices = rng.choice(rows, rng.integers(1, rows + 1), replace=False)
        row_values = (rng.standard_normal((len(indices),) + shape[1:]) * scale)
        return tf.IndexedSlices(tf.constant(row_values, dtype), tf.constant(indices, tf.int64),
                                tf.constant(shape, tf.int64))
    return tf.constant(values, dtype)


def _as_float32(gradient, dtype):
    """A half-precision variable's gradient as the float32 stand-in's: what
    the variable's dtype makes of it, in float32."""
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(_rounded(gradient.values, dtype), gradient.indices,
                                gradient.dense_shape)
    return _rounded(tf.convert_to_tensor(gradient), dtype)


def _all_gradients(pattern, densify, half_as_float32):
    """Every step's gradients, drawn alike for both sides."""
    rng = np.random.default_rng(pattern["seed"] + 1)
    calls = [pattern["variables"][i] for i in pattern["order"]]
    steps = []
    for step in range(pattern["steps"]):
        grads = [_gradient(kind, shape, dtype, rng, step)
                 for kind, (dtype, shape, _) in zip(pattern["grad_kinds"], calls)]
        if densify:
            grads = [tf.convert_to_tensor(g) if kind == "sparse_duplicates" else g
                     for g, kind in zip(grads, pattern["grad_kinds"])]
        if half_as_float32:
            grads = [_as_float32(g, dtype) if dtype in HALF else g
                     for g, (dtype, _, _) in zip(grads, calls)]
        steps.append(grads)
    return steps


def partly_sparse(pattern):
    """Names of the variables (and their slots) whose rows a sparse batch
    left out: ours does not touch them, stock does (a deliberate difference)."""
    names = set()
    for position, kind in zip(pattern["order"], pattern["grad_kinds"]):
        if kind == "sparse":
            names.add(f"v{position}")
    return names


def owner_of(name):
    """The position of the model variable a snapshot entry belongs to (its
    own value, its slots, its moving average), or None."""
    last = name.rsplit("/", 1)[-1]
    if last.startswith("v") and last[1:].split("_", 1)[0].isdigit():
        return int(last[1:].split("_", 1)[0])
    return None


def take_snapshot(optimizer, model_variables):
    out = [(v.path, v.numpy()) for v in model_variables]
    if optimizer.built:
        # Keras names each optimizer uniquely ("rm_sprop_3/..."); the slot
        # names after the prefix are what must match.
        prefix = optimizer.name + "/"
        out += [("optimizer/" + v.path.removeprefix(prefix), v.numpy())
                for v in optimizer.variables]
    return out


def _round_half_state(pattern, optimizer, model_variables):
    """The float32 stand-ins of half-precision variables, and their optimizer
    state, rounded to the half type: what ours stores after a step."""
    half = half_positions(pattern)
    state = list(model_variables) + (list(optimizer.variables) if optimizer.built else [])
    for variable in state:
        owner = owner_of(variable.path)
        if owner in half:
            variable.assign(_rounded(variable, pattern["variables"][owner][0]))


def _in_declared_dtypes(pattern, snapshot):
    """A stand-in run's snapshot with the half-precision entries in their type."""
    half = half_positions(pattern)
    return [(name, tf.cast(value, pattern["variables"][owner_of(name)][0]).numpy()
             if owner_of(name) in half else value) for name, value in snapshot]


def _reload(cls, optimizer, model_variables):
    """A new optimizer from the old one's config and weights, as a user moves
    training state (get_config / from_config / set_weights)."""
    fresh = cls.from_config(optimizer.get_config())
    fresh.build(model_variables)
    fresh.set_weights([v.numpy() for v in optimizer.variables])
    return fresh


def _loss_with_gradients(variables, grads):
    """A loss whose gradient with respect to each variable is its `grads`
    entry: a dense tensor, an IndexedSlices (through a gather) or None."""
    def loss():
        terms = [tf.constant(0.0)]
        for v, g in zip(variables, grads):
            if g is None:
                continue
            if isinstance(g, tf.IndexedSlices):
                rows = tf.gather(v, g.indices) * tf.stop_gradient(tf.cast(g.values, v.dtype))
            else:
                rows = v * tf.stop_gradient(tf.cast(g, v.dtype))
            terms.append(tf.cast(tf.reduce_sum(rows), tf.float32))
        return tf.add_n(terms)
    return loss


def minimize(optimizer, loss, var_list):
    """optimizer.minimize; for stock, which has none in Keras 3 (ours adds it
    back: a deliberate difference), what it does: the tape, then
    apply_gradients."""
    if isinstance(optimizer, keras_optimizer.RMSprop):
        return optimizer.minimize(loss, var_list)
    var_list = list(var_list)
    with tf.GradientTape() as tape:
        value = loss()
    return optimizer.apply_gradients(zip(tape.gradient(value, var_list), var_list))


def run_pattern(cls, config, pattern, densify=False, half_as_float32=False):
    """Snapshots after each step. `densify` gives "sparse_duplicates"
    gradients as dense tensors; `half_as_float32` runs half-precision
    variables as float32 ones whose state is rounded to the half type after
    every step (ours computes them in float32 and rounds once: the
    deliberate difference)."""
    model_variables = _make_variables(pattern, half_as_float32)
    unique = list(model_variables)
    optimizer, hyper_variables = make_optimizer(cls, config)
    if pattern["build_first"] or pattern["api"] == "apply_built":
        optimizer.build(unique)
    calls = [model_variables[i] for i in pattern["order"]]
    all_grads = _all_gradients(pattern, densify, half_as_float32)

    def variables_arg():
        kind = pattern["pass_variables_as"]
        return calls if kind == "list" else tuple(calls) if kind == "tuple" else iter(calls)

    def step(grads):
        api = pattern["api"]
        if api == "apply_built":
            optimizer.apply(grads)
        elif api == "apply_gradients":
            optimizer.apply_gradients(zip(grads, variables_arg()))
        elif api == "minimize":
            minimize(optimizer, _loss_with_gradients(calls, grads), variables_arg())
        else:
            optimizer.apply(grads, variables_arg())

    def compiled(fn):
        if pattern["mode"] == "eager":
            return fn
        return tf.function(fn, jit_compile=pattern["mode"] == "xla")

    run_step = compiled(step)
    snapshots = []
    for i, grads in enumerate(all_grads):
        run_step(grads)
        for variable in hyper_variables:
            variable.assign(variable * 2.0)  # stock reads it at each step
        snapshot = take_snapshot(optimizer, model_variables)
        if half_as_float32:
            _round_half_state(pattern, optimizer, model_variables)
            snapshot = _in_declared_dtypes(pattern, snapshot)
        snapshots.append(snapshot)
        if pattern["reload_after"] == i + 1:
            optimizer = _reload(cls, optimizer, unique)
            run_step = compiled(step)
    return snapshots
