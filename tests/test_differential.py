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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_optimizer
from tests.differential import EXACT, Tolerance, compare, loosest, raises_alike

Stock = keras.optimizers.RMSprop
Ours = keras_optimizer.RMSprop
ROOT = Path(__file__).resolve().parent.parent
# Examples per hypothesis test: about a minute in all in `make test`;
# `make fuzz` (HYPOTHESIS_PROFILE=long) runs the long profile.
EXAMPLES = {"quick": 120, "long": 16000}.get(os.environ.get("HYPOTHESIS_PROFILE", "quick"), 120)
FIT_EXAMPLES = max(4, EXAMPLES // 30)

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
def configurations(draw, half_precision=False):
    """Constructor arguments as plain data (`make_optimizer` builds them).
    With half-precision variables rho is not 0: centered, ms - mg^2 then
    cancels to rounding noise, which float16 and float32 round apart."""
    config = dict(
        learning_rate=draw(st.sampled_from(
            [("float", 0.01), ("float", 0.1), ("schedule", 0.1), ("callable_float", 0.05),
             ("callable_tensor", 0.05)])),
        rho=draw(st.sampled_from([0.9, 0.5, 0.99] + ([] if half_precision else [0.0]))),
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
    eager_only_kinds = KINDS
    mode = draw(st.sampled_from(["eager", "eager", "function", "function", "xla"]))
    kinds = eager_only_kinds if mode == "eager" else KINDS[:-2]
    variables = draw(st.lists(st.tuples(st.sampled_from(DTYPES), st.sampled_from(SHAPES),
                                        st.integers(0, _num_devices() - 1)),
                              min_size=1, max_size=4))
    order = list(range(len(variables)))
    if draw(st.booleans()):
        order = draw(st.permutations(order))
    if draw(st.integers(0, 5)) == 0:
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
        api=draw(st.sampled_from(["apply", "apply", "apply_built", "apply_gradients"])),
        pass_variables_as=draw(st.sampled_from(["list", "tuple", "iterator"])),
        build_first=draw(st.booleans()),
        steps=draw(st.integers(1, 4)),
        reload_after=draw(st.sampled_from([None, None, None, 1])),
        seed=draw(st.integers(0, 2 ** 16)),
    )


def _make_variables(pattern):
    rng = np.random.default_rng(pattern["seed"])
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    made = []
    for i, (dtype, shape, device) in enumerate(pattern["variables"]):
        with tf.device(devices[device]):
            made.append(keras.Variable(rng.standard_normal(shape).astype(np.float32),
                                       dtype=dtype, name=f"v{i}"))
    return made


def _gradient(kind, variable, rng, step):
    shape, dtype = tuple(variable.shape), variable.dtype
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
        else:
            indices = rng.integers(0, rows, rng.integers(1, rows + 2))
        row_values = (rng.standard_normal((len(indices),) + shape[1:]) * scale)
        return tf.IndexedSlices(tf.constant(row_values, dtype), tf.constant(indices, tf.int64),
                                tf.constant(shape, tf.int64))
    return tf.constant(values, dtype)


def _all_gradients(pattern, model_variables, densify):
    """Every step's gradients, drawn alike for both sides."""
    rng = np.random.default_rng(pattern["seed"] + 1)
    calls = [model_variables[i] for i in pattern["order"]]
    steps = []
    for step in range(pattern["steps"]):
        grads = [_gradient(kind, v, rng, step) for kind, v in zip(pattern["grad_kinds"], calls)]
        if densify:
            grads = [tf.convert_to_tensor(g) if kind == "sparse_duplicates" else g
                     for g, kind in zip(grads, pattern["grad_kinds"])]
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


def _snapshot(optimizer, model_variables):
    out = [(v.path, v.numpy()) for v in model_variables]
    if optimizer.built:
        # Keras names each optimizer uniquely ("rm_sprop_3/..."); the slot
        # names after the prefix are what must match.
        prefix = optimizer.name + "/"
        out += [("optimizer/" + v.path.removeprefix(prefix), v.numpy())
                for v in optimizer.variables]
    return out


def _reload(cls, optimizer, model_variables):
    """A new optimizer from the old one's config and weights, as a user moves
    training state (get_config / from_config / set_weights)."""
    fresh = cls.from_config(optimizer.get_config())
    fresh.build(model_variables)
    fresh.set_weights([v.numpy() for v in optimizer.variables])
    return fresh


def run_pattern(cls, config, pattern, densify=False):
    """Snapshots after each step; `densify` gives "sparse_duplicates"
    gradients as dense tensors."""
    model_variables = _make_variables(pattern)
    unique = list(model_variables)
    optimizer, hyper_variables = make_optimizer(cls, config)
    if pattern["build_first"] or pattern["api"] == "apply_built":
        optimizer.build(unique)
    calls = [model_variables[i] for i in pattern["order"]]
    if pattern["api"] == "apply_built" and len(calls) != len(unique):
        calls = unique  # apply(grads) takes one gradient per tracked variable
    all_grads = _all_gradients(pattern, model_variables, densify)

    def variables_arg():
        kind = pattern["pass_variables_as"]
        return calls if kind == "list" else tuple(calls) if kind == "tuple" else iter(calls)

    def step(grads):
        api = pattern["api"]
        if api == "apply_built":
            optimizer.apply(grads[:len(calls)])
        elif api == "apply_gradients":
            optimizer.apply_gradients(zip(grads, variables_arg()))
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
        snapshots.append(_snapshot(optimizer, model_variables))
        if pattern["reload_after"] == i + 1:
            optimizer = _reload(cls, optimizer, unique)
            run_step = compiled(step)
    return snapshots


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
    if dtypes & {"float16", "bfloat16"}:
        half = 5e-2 if "bfloat16" in dtypes else 1e-2
        reasons.append(Tolerance(half, half, "half precision computed in float32"))
    return loosest(*reasons) if reasons else EXACT


def uncompared(pattern):
    """A predicate on snapshot names: the partly-sparse variables, their
    slots and their moving averages."""
    partly = _partly_sparse(pattern)

    def skip(name):
        last = name.rsplit("/", 1)[-1]
        return any(last == v or last.startswith(v + "_") for v in partly)
    return skip


def check(config, pattern):
    if "sparse_duplicates" in pattern["grad_kinds"]:
        # Stock must take the IndexedSlices where ours does; its numbers for
        # them are those of their dense sum (the deliberate difference).
        if raises_alike(lambda cls: run_pattern(cls, config, pattern), Stock, Ours):
            return
        stock_run = lambda cls: run_pattern(cls, config, pattern, densify=cls is Stock)  # noqa: E731
    else:
        stock_run = lambda cls: run_pattern(cls, config, pattern)  # noqa: E731
    compare(stock_run, Stock, Ours, tolerance_of(config, pattern), skip=uncompared(pattern))


_HARNESS = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def examples(draw):
    pattern = draw(call_patterns())
    half = any(dtype in ("float16", "bfloat16") for dtype, _, _ in pattern["variables"])
    return draw(configurations(half_precision=half)), pattern


@_HARNESS
@given(example=examples())
def test_matches_stock(example):
    check(*example)
