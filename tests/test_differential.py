"""Differential testing against keras.optimizers.RMSprop.

Hypothesis draws an optimizer configuration (every constructor argument:
floats, schedules, callables, `tf.Variable`s, every combination of the Keras
step arguments, momentum / centered, `name`) and a call pattern (variables of
mixed dtypes, shapes including scalars and empty ones, devices; dense, sparse,
missing, NumPy, list and other-dtype gradients; a variable given twice;
variables as a one-shot iterator; `apply`, `apply` on a built optimizer,
`apply_gradients`; eager, `tf.function` and XLA; built before or on first
use; the state moved through `get_config` / `set_weights` in the middle) and
runs stock and ours side by side, step by step (tests/differential.py).

Deliberate differences (README.md) set the tolerance or leave a value
uncompared: inside a graph TensorFlow rewrites stock's x / sqrt(d); norms are
summed in float64; half precision is computed in float32; sparse updates
touch only the rows in the batch (so a row left out of some batch is not
compared); under XLA ours is plain TensorFlow. Everything else is bit for bit.

The variables' devices vary where the process has several CPU devices:
`test_across_devices` runs this file again in a child process with two.
The regression cases below the harness are the divergences it was built
after; each one is a case where stock works and ours once failed or differed.
"""
import itertools
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import keras_optimizer
from tests.differential import (EXACT, Tolerance, assert_ours_raises_where_stock_does,
                                assert_ours_works_where_stock_does, compare, loosest, outcomes)

Stock = keras.optimizers.RMSprop
Ours = keras_optimizer.RMSprop
ROOT = Path(__file__).resolve().parent.parent
# Examples per hypothesis test: about two minutes in all in `make test`;
# `make fuzz` (HYPOTHESIS_PROFILE=long) runs the long profile.
# The child process of test_across_devices (two CPU devices) runs half as
# many in the quick profile.
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "quick")
_CHILD = "RMSPROP_TEST_CPU_DEVICES" in os.environ
EXAMPLES = int(os.environ.get("RMSPROP_DIFFERENTIAL_EXAMPLES", 0)) or {
    "quick": 50 if _CHILD else 100, "long": 10000}[_PROFILE]
FIT_EXAMPLES = {"quick": 4, "long": 300}[_PROFILE]

DTYPES = ["float32", "float32", "float64", "float16", "bfloat16"]
SHAPES = [(), (0,), (3,), (4, 3), (2, 0), (5, 1, 2)]
# Gradient kinds; "numpy" and "list" are eager only (a tf.function would
# retrace on every Python value).
# "sparse": some rows, duplicates possible (those variables are left
# uncompared); "sparse_all_rows": every row once; "sparse_duplicates": every
# row, some twice, which stock gets as the dense gradient (stock Keras 3
# squares each duplicate slice apart, not their sum; see tolerance_of).
KINDS = ["dense", "dense", "dense", "none", "sparse", "sparse_all_rows", "sparse_duplicates",
         "other_dtype", "numpy", "list"]


# -- the configuration ------------------------------------------------------

@st.composite
def configurations(draw):
    """Constructor arguments as plain data (`make_optimizer` builds them)."""
    config = dict(
        learning_rate=draw(st.sampled_from(
            [("float", 0.01), ("float", 0.1), ("schedule", 0.1), ("callable_float", 0.05),
             ("callable_tensor", 0.05)])),
        rho=draw(st.sampled_from([0.9, 0.5, 0.0, 0.99])),
        momentum=draw(st.sampled_from([0.0, 0.0, 0.5, 0.9])),
        epsilon=draw(st.sampled_from([1e-7, 1e-3, 1.0])),
        centered=draw(st.booleans()),
    )
    clipping = draw(st.sampled_from(
        [{}, {}, {"clipnorm": 0.5}, {"clipnorm": 2.0}, {"global_clipnorm": 1.0},
         {"clipvalue": 0.1}, {"clipnorm": 1.0, "clipvalue": 0.1}]))
    config.update(clipping)
    config["weight_decay"] = draw(st.sampled_from(
        [None, None, ("float", 0.01), ("float", 0.2), ("variable", 0.05)]))
    config["loss_scale_factor"] = draw(st.sampled_from([None, None, 8.0, 0.5]))
    if draw(st.booleans()):
        config["use_ema"] = True
        config["ema_momentum"] = draw(st.sampled_from([0.9, 0.99]))
        config["ema_overwrite_frequency"] = draw(st.sampled_from([None, 2]))
    config["gradient_accumulation_steps"] = draw(st.sampled_from([None, None, None, 2]))
    if draw(st.booleans()):
        config["name"] = "opt"
    return config


def _learning_rate(spec):
    kind, value = spec
    if kind == "float":
        return value
    if kind == "schedule":
        return keras.optimizers.schedules.ExponentialDecay(value, decay_steps=1, decay_rate=0.5)
    if kind == "callable_float":
        return lambda: value
    return lambda: tf.constant(value)


def make_optimizer(cls, config):
    """The optimizer, and the variables among its arguments (the run changes
    them between steps, as a user would)."""
    kwargs = dict(config)
    kwargs["learning_rate"] = _learning_rate(config["learning_rate"])
    hyper_variables = []
    decay = config["weight_decay"]
    if decay is not None:
        kind, value = decay
        kwargs["weight_decay"] = tf.Variable(value) if kind == "variable" else value
        if kind == "variable":
            hyper_variables.append(kwargs["weight_decay"])
    return cls(**kwargs), hyper_variables


# -- the call pattern -------------------------------------------------------

def _num_devices():
    return len(tf.config.list_logical_devices("CPU"))


@st.composite
def call_patterns(draw):
    mode = draw(st.sampled_from(["eager", "eager", "function", "function", "xla"]))
    kinds = KINDS if mode == "eager" else KINDS[:-2]
    variables = draw(st.lists(st.tuples(st.sampled_from(DTYPES), st.sampled_from(SHAPES),
                                        st.integers(0, _num_devices() - 1)),
                              min_size=1, max_size=4))
    api = draw(st.sampled_from(["apply", "apply", "apply_built", "apply_gradients", "minimize"]))
    order = list(range(len(variables)))
    # apply(grads) on a built optimizer takes one gradient per tracked
    # variable, in the order it was built with; minimize's tape sums the
    # gradients of a variable listed twice (two sparse terms would become
    # one gradient with duplicate rows).
    if api != "apply_built":
        if draw(st.booleans()):
            order = draw(st.permutations(order))
        if api != "minimize" and draw(st.integers(0, 5)) == 0:
            order.append(draw(st.sampled_from(order)))  # one variable twice
    grad_kinds = []
    for position in order:
        _, shape, _ = variables[position]
        kind = draw(st.sampled_from(kinds))
        if kind.startswith("sparse") and (not shape or shape[0] == 0):
            kind = "dense"
        grad_kinds.append(kind)
    return dict(
        mode=mode,
        variables=variables,
        order=order,
        grad_kinds=grad_kinds,
        api=api,
        pass_variables_as=draw(st.sampled_from(["list", "tuple", "iterator"])),
        build_first=draw(st.booleans()),
        steps=draw(st.integers(1, 4)),
        reload_after=draw(st.sampled_from([None, None, None, 1])),
        seed=draw(st.integers(0, 2 ** 16)),
    )


HALF = ("float16", "bfloat16")


def _half_positions(pattern):
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


def _partly_sparse(pattern):
    """Names of the variables (and their slots) whose rows a sparse batch
    left out: ours does not touch them, stock does (a deliberate difference)."""
    names = set()
    for position, kind in zip(pattern["order"], pattern["grad_kinds"]):
        if kind == "sparse":
            names.add(f"v{position}")
    return names


def _owner(name):
    """The position of the model variable a snapshot entry belongs to (its
    own value, its slots, its moving average), or None."""
    last = name.rsplit("/", 1)[-1]
    if last.startswith("v") and last[1:].split("_", 1)[0].isdigit():
        return int(last[1:].split("_", 1)[0])
    return None


def _snapshot(optimizer, model_variables):
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
    half = _half_positions(pattern)
    state = list(model_variables) + (list(optimizer.variables) if optimizer.built else [])
    for variable in state:
        owner = _owner(variable.path)
        if owner in half:
            variable.assign(_rounded(variable, pattern["variables"][owner][0]))


def _in_declared_dtypes(pattern, snapshot):
    """A stand-in run's snapshot with the half-precision entries in their type."""
    half = _half_positions(pattern)
    return [(name, tf.cast(value, pattern["variables"][_owner(name)][0]).numpy()
             if _owner(name) in half else value) for name, value in snapshot]


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
    if isinstance(optimizer, Ours):
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
        snapshot = _snapshot(optimizer, model_variables)
        if half_as_float32:
            _round_half_state(pattern, optimizer, model_variables)
            snapshot = _in_declared_dtypes(pattern, snapshot)
        snapshots.append(snapshot)
        if pattern["reload_after"] == i + 1:
            optimizer = _reload(cls, optimizer, unique)
            run_step = compiled(step)
    return snapshots


KERAS_STEPS = ("weight_decay", "loss_scale_factor", "clipnorm", "global_clipnorm", "clipvalue",
               "use_ema", "gradient_accumulation_steps")


def tolerance_of(config, pattern):
    """The documented differences this example can show."""
    dtypes = {pattern["variables"][i][0] for i in pattern["order"]}
    kinds = set(pattern["grad_kinds"])
    reasons = []
    if pattern["mode"] != "eager":
        # TensorFlow's graph optimizer rewrites stock's x / sqrt(d) into
        # x * rsqrt(d); under XLA ours is plain TensorFlow, also rewritten.
        reasons.append(Tolerance(2e-5, 1e-6, "graph rewrite of x / sqrt(d)"))
    if config.get("clipnorm") or config.get("global_clipnorm"):
        reasons.append(Tolerance(1e-5, 1e-7, "norms summed in float64"))
    if "sparse_duplicates" in kinds:
        # Ours sums duplicate rows in index order, stock's dense gradient
        # is summed by TensorFlow's segment sum.
        reasons.append(Tolerance(1e-6, 1e-7, "duplicate sparse rows summed"))
    twice = len(set(pattern["order"])) != len(pattern["order"])
    keras_steps = any(config.get(k) for k in KERAS_STEPS)
    if dtypes & set(HALF) and (reasons or twice or keras_steps):
        # A float32 round-off apart can round a half value to its neighbour;
        # a variable given twice is rounded between its two updates, and
        # where Keras runs a step of its own (weight decay, unscaling...)
        # it rounds to the half type between that step and the update: the
        # stand-in rounds only after the whole step.
        # Two ulps per step and per update (they add up); near zero (where
        # steps cancel), in ulps of the largest step, lr / sqrt(1 - rho).
        updates = pattern["steps"] * (2 if twice else 1)
        ulps = 2 * updates * 2.0 ** (-7 if "bfloat16" in dtypes else -10)
        step = config["learning_rate"][1] / np.sqrt(1.0 - config["rho"])
        reasons.append(Tolerance(ulps, ulps * 2 * step, "half precision rounding"))
    if config["centered"]:
        reasons.append(Tolerance(why="centered root of max(ms - mg^2 + epsilon, 0)",
                                 stock_nan_ok=True))
    return loosest(*reasons) if reasons else EXACT


def uncompared(config, pattern):
    """A predicate on snapshot names: what a documented difference leaves
    uncompared. The variables a sparse batch left rows of (with their slots
    and moving averages): ours does not touch those rows. The moving average
    of a half-precision variable: ours computes it as stock does, with
    ema_momentum rounded to the half type, from the stored value, which the
    float32 stand-in cannot; with ema_overwrite_frequency the variable too."""
    partly = {int(v[1:]) for v in _partly_sparse(pattern)}
    half = _half_positions(pattern) if config.get("use_ema") else set()
    overwritten = half if config.get("ema_overwrite_frequency") else set()

    def skip(name):
        owner = _owner(name)
        if owner in partly or owner in overwritten:
            return True
        return owner in half and name.endswith("_average")
    return skip


def check(config, pattern):
    """Stock and ours on one example. Where stock's numbers come from a
    stand-in (the dense sum of duplicate sparse rows; float32 for half
    precision), both first run on the real input: where stock works ours
    must, and where stock raises ours must too, but for duplicate sparse
    rows, which stock Keras 3 mishandles (it squares each slice apart, and
    centered it can fail in a gather or give NaN; ours sums them first)."""
    duplicates = "sparse_duplicates" in pattern["grad_kinds"]
    half = bool(_half_positions(pattern))
    if duplicates or half:
        theirs, ours = outcomes(lambda cls: run_pattern(cls, config, pattern), Stock, Ours)
        assert_ours_works_where_stock_does(theirs, ours)
        if not duplicates:
            assert_ours_raises_where_stock_does(theirs, ours)
        if ours.error is not None:
            return
        if duplicates and any(config.get(k) for k in ("clipnorm", "global_clipnorm", "clipvalue")):
            # Keras clips the slices before they are summed: no dense
            # gradient gives stock's clipped values.
            return

    def run(cls):
        stand_in = cls is Stock
        return run_pattern(cls, config, pattern, densify=stand_in and duplicates,
                           half_as_float32=stand_in and half)
    compare(run, Stock, Ours, tolerance_of(config, pattern), skip=uncompared(config, pattern))


# The quick profile draws the same examples on every run (CI runs what
# passed here); the long one draws anew.
_HARNESS = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                    derandomize=_PROFILE == "quick",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_HARNESS
@given(config=configurations(), pattern=call_patterns())
def test_matches_stock(config, pattern):
    # Centered with rho 0, ms - mg^2 is 0 and each step is lr * g / sqrt(epsilon):
    # thousands of times a normal step, whose rounding to a half type leaves
    # errors that no tolerance of the final values can bound.
    assume(not (_half_positions(pattern) and config["centered"] and config["rho"] == 0.0))
    check(config, pattern)


# -- fit ----------------------------------------------------------------------

def _fit(cls, config, run_eagerly, seed):
    """Two epochs of a small model with an Embedding and a Dense layer; each
    batch of four names each of the four tokens once (stock Keras 3 squares
    the slices of a repeated token apart: see check)."""
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((1,), dtype="int32")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(4, 3, name="embedding")(tokens))
    model = keras.Model(tokens, keras.layers.Dense(2, name="dense")(embedded))
    optimizer, _ = make_optimizer(cls, config)
    model.compile(optimizer=optimizer, loss="mse", run_eagerly=run_eagerly, jit_compile=False)
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.permutation(4) for _ in range(3)]).astype("int32")[:, None]
    y = rng.standard_normal((12, 2)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return [_snapshot(optimizer, model.trainable_variables)]


@settings(_HARNESS, max_examples=FIT_EXAMPLES)
@given(config=configurations(), run_eagerly=st.booleans(), seed=st.integers(0, 100))
def test_fit_matches_stock(config, run_eagerly, seed):
    # Embedding gradients are IndexedSlices with every row once per batch.
    tolerance = tolerance_of(config, dict(mode="eager" if run_eagerly else "function",
                                          variables=[("float32", (), 0)], order=[0],
                                          grad_kinds=["sparse_all_rows"]))
    compare(lambda cls: _fit(cls, config, run_eagerly, seed), Stock, Ours, tolerance)


# -- devices ----------------------------------------------------------------

@pytest.mark.skipif("RMSPROP_TEST_CPU_DEVICES" in os.environ, reason="runs in the parent")
def test_across_devices():
    """This file again in a process with two CPU devices (tests/conftest.py
    makes them), where variables are drawn on either."""
    env = dict(os.environ, RMSPROP_TEST_CPU_DEVICES="2", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_differential.py", "-k", "not fit"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=1800 if _PROFILE == "quick" else 6 * 3600)
    assert result.returncode == 0, result.stdout[-20000:]


def _on_two_devices():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        pytest.skip("needs two CPU devices (test_across_devices runs it)")
    return devices[:2]


# -- the cases that started it: each once failed or differed ------------------

EXTRAS = {"none": {}, "weight_decay": dict(weight_decay=0.05),
          "clipnorm+ema": dict(clipnorm=0.5, use_ema=True),
          "loss_scale+clipvalue": dict(loss_scale_factor=4.0, clipvalue=0.3)}


def _side_by_side(body, tolerance=EXACT):
    """compare() on body(cls) -> list of arrays, named by position."""
    def run(cls):
        return [[(str(i), np.asarray(a)) for i, a in enumerate(body(cls))]]
    compare(run, Stock, Ours, tolerance)


def _steps(compiled, fn):
    return tf.function(fn) if compiled else fn


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_variables_on_two_devices(extras, compiled):
    first, second = _on_two_devices()

    def body(cls):
        with tf.device(first):
            a = keras.Variable(np.ones((3, 2), "float32"), name="a")
        with tf.device(second):
            b = keras.Variable(np.full(4, 2.0, "float32"), name="b")
        optimizer = cls(learning_rate=0.1, momentum=0.5, **EXTRAS[extras])
        step = _steps(compiled, lambda g: optimizer.apply(g, [a, b]))
        for i in range(3):
            step([tf.fill((3, 2), 0.1 * (i + 1)), tf.fill((4,), -0.3)])
        return [a.numpy(), b.numpy()] + [v.numpy() for v in optimizer.variables]
    tolerance = Tolerance(2e-5, 1e-6, "graph rewrite; norms") if (compiled or extras == "clipnorm+ema") else EXACT
    _side_by_side(body, tolerance)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
def test_weight_decay_variable_is_read_each_step(compiled):
    def body(cls):
        decay = tf.Variable(0.1)
        x, y = tf.Variable([1.0, 2.0]), tf.Variable(3.0)
        optimizer = cls(learning_rate=0.1, weight_decay=decay, clipvalue=0.4)
        step = _steps(compiled, lambda: optimizer.apply(
            [tf.constant([0.1, 0.2]), tf.constant(0.5)], [x, y]))
        out = []
        for value in (0.1, 0.5, 0.0):
            decay.assign(value)
            step()
            out += [x.numpy(), y.numpy()]
        return out
    _side_by_side(body, Tolerance(2e-5, 1e-7, "graph rewrite") if compiled else EXACT)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_same_variable_twice_in_one_call(extras, compiled):
    def body(cls):
        a, b = tf.Variable([1.0, 2.0]), tf.Variable([1.0])
        optimizer = cls(learning_rate=0.1, **EXTRAS[extras])
        step = _steps(compiled, lambda: optimizer.apply(
            [tf.constant([0.1, 0.2]), tf.constant([5.0]), tf.constant([-0.3, 0.4])], [a, b, a]))
        step()
        step()
        return [a.numpy(), b.numpy()] + [v.numpy() for v in optimizer.variables]
    loose = compiled or extras == "clipnorm+ema"
    _side_by_side(body, Tolerance(2e-5, 1e-7, "graph rewrite; norms") if loose else EXACT)


@pytest.mark.parametrize("make_iterator", [iter, lambda vs: (v for v in vs), lambda vs: map(
    lambda v: v, vs)], ids=["iter", "generator", "map"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_variables_as_one_shot_iterator(extras, make_iterator):
    def body(cls):
        a, b = tf.Variable([1.0, 2.0]), tf.Variable([1.0])
        optimizer = cls(learning_rate=0.1, **EXTRAS[extras])
        for _ in range(2):
            optimizer.apply([tf.constant([0.1, 0.2]), tf.constant([5.0])], make_iterator([a, b]))
        return [a.numpy(), b.numpy(), optimizer.iterations.numpy()]
    _side_by_side(body, Tolerance(1e-6, 1e-7, "norms") if extras == "clipnorm+ema" else EXACT)


@pytest.mark.parametrize("rate", [lambda: 0.1, lambda: 1e-3, lambda: np.float64(0.1), lambda: 3],
                         ids=["python_float", "small_float", "numpy_float64", "python_int"])
@pytest.mark.parametrize("extras", ["none", "weight_decay"])
def test_callable_learning_rate_on_float64(rate, extras):
    def body(cls):
        x = tf.Variable([1.0, -2.0, 0.5], dtype=tf.float64)
        optimizer = cls(learning_rate=rate, momentum=0.5, **EXTRAS[extras])
        for _ in range(3):
            optimizer.apply([tf.constant([0.1, 0.2, -0.3], tf.float64)], [x])
        return [x.numpy()]
    _side_by_side(body)


@pytest.mark.parametrize("kind", ["list", "numpy", "python_scalar"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_list_and_numpy_gradients(kind, extras):
    def body(cls):
        a, b = tf.Variable([1.0, 2.0]), tf.Variable(1.0)
        optimizer = cls(learning_rate=0.1, **EXTRAS[extras])
        grads = {"list": [[0.1, 0.2], [5.0][0]],
                 "numpy": [np.array([0.1, 0.2], np.float32), np.float32(5.0)],
                 "python_scalar": [[0.1, 0.2], 5]}[kind]
        optimizer.apply(grads, [a, b])
        optimizer.apply(grads, [a, b])
        return [a.numpy(), b.numpy()]
    _side_by_side(body, Tolerance(1e-6, 1e-7, "norms") if extras == "clipnorm+ema" else EXACT)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_subclass_overriding_update_step_is_called(extras, compiled):
    def subclass(cls):
        class Scaled(cls):
            calls = []

            def update_step(self, gradient, variable, learning_rate):
                Scaled.calls.append(variable.name)
                return super().update_step(gradient, variable, learning_rate * 0.5)
        return Scaled

    calls = {}

    def body(cls):
        cls = subclass(cls)
        a, b = tf.Variable([1.0, 2.0], name="a"), tf.Variable([1.0], name="b")
        optimizer = cls(learning_rate=0.1, **EXTRAS[extras])
        step = _steps(compiled, lambda: optimizer.apply(
            [tf.constant([0.1, 0.2]), tf.constant([5.0])], [a, b]))
        step()
        step()
        calls[cls.__mro__[1]] = list(cls.calls)
        return [a.numpy(), b.numpy()]
    loose = compiled or extras == "clipnorm+ema"
    _side_by_side(body, Tolerance(2e-5, 1e-7, "graph rewrite; norms") if loose else EXACT)
    assert calls[Ours] == calls[Stock] and calls[Ours]


@pytest.mark.parametrize("var_list", ["list", "iterator", "callable"])
def test_minimize_with_keras_variables(var_list):
    def body(cls):
        a = keras.Variable(np.array([1.0, -2.0], "float32"), name="a")
        b = keras.Variable(0.5, name="b")
        optimizer = cls(learning_rate=0.1, weight_decay=0.01)
        loss = lambda: tf.reduce_sum(a * a) + b * 3.0  # noqa: E731
        for _ in range(2):
            chosen = {"list": [a, b], "iterator": iter([a, b]), "callable": lambda: [a, b]}[var_list]
            if cls is Stock and var_list == "callable":
                chosen = chosen()
            minimize(optimizer, loss, chosen)
        return [a.numpy(), b.numpy(), optimizer.iterations.numpy()]
    _side_by_side(body)
