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
compared); under XLA, XLA compiles stock's formula its own way. Everything
else is bit for bit.

The variables' devices vary where the process has several CPU devices:
`test_across_devices` runs this file and the regression cases again in a
child process with two. The regression cases (tests/test_differential_cases.py)
are the divergences the harness was built after; what it draws is in
tests/keras3_draws.py, how an example runs in tests/keras3_runs.py.
"""
import os

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import keras_optimizer
from tests.differential import (EXACT, Tolerance, assert_ours_raises_where_stock_does,
                                assert_ours_works_where_stock_does, compare, loosest, outcomes)
from tests.keras3_draws import call_patterns, configurations, make_optimizer
from tests.keras3_runs import (HALF, half_positions, owner_of, partly_sparse, run_pattern,
                               take_snapshot)
from tests.processes import run_python

Stock = keras.optimizers.RMSprop
Ours = keras_optimizer.RMSprop
# Examples per hypothesis test: about two minutes in all in `make test`;
# `make fuzz` (HYPOTHESIS_PROFILE=long) runs the long profile.
# The child process of test_across_devices (two CPU devices) runs half as
# many in the quick profile.
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "quick")
_CHILD = "RMSPROP_TEST_CPU_DEVICES" in os.environ
EXAMPLES = int(os.environ.get("RMSPROP_DIFFERENTIAL_EXAMPLES", 0)) or {
    "quick": 50 if _CHILD else 100, "long": 10000}[_PROFILE]
FIT_EXAMPLES = {"quick": 4, "long": 300}[_PROFILE]

KERAS_STEPS = ("weight_decay", "loss_scale_factor", "clipnorm", "global_clipnorm", "clipvalue",
               "use_ema", "gradient_accumulation_steps")


def tolerance_of(config, pattern):
    """The documented differences this example can show."""
    dtypes = {pattern["variables"][i][0] for i in pattern["order"]}
    kinds = set(pattern["grad_kinds"])
    reasons = []
    if pattern["mode"] != "eager":
        # TensorFlow's graph optimizer rewrites stock's x / sqrt(d) into
        # x * rsqrt(d); under XLA, XLA compiles stock's formula its own way.
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
    partly = {int(v[1:]) for v in partly_sparse(pattern)}
    half = half_positions(pattern) if config.get("use_ema") else set()
    overwritten = half if config.get("ema_overwrite_frequency") else set()

    def skip(name):
        owner = owner_of(name)
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
    half = bool(half_positions(pattern))
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


@pytest.mark.slow
@_HARNESS
@given(config=configurations(), pattern=call_patterns())
def test_matches_stock(config, pattern):
    # Centered with rho 0, ms - mg^2 is 0 and each step is lr * g / sqrt(epsilon):
    # thousands of times a normal step, whose rounding to a half type leaves
    # errors that no tolerance of the final values can bound.
    assume(not (half_positions(pattern) and config["centered"] and config["rho"] == 0.0))
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
    return [take_snapshot(optimizer, model.trainable_variables)]


@pytest.mark.slow
@settings(_HARNESS, max_examples=FIT_EXAMPLES)
@given(config=configurations(), run_eagerly=st.booleans(), seed=st.integers(0, 100))
def test_fit_matches_stock(config, run_eagerly, seed):
    # Embedding gradients are IndexedSlices with every row once per batch.
    tolerance = tolerance_of(config, dict(mode="eager" if run_eagerly else "function",
                                          variables=[("float32", (), 0)], order=[0],
                                          grad_kinds=["sparse_all_rows"]))
    compare(lambda cls: _fit(cls, config, run_eagerly, seed), Stock, Ours, tolerance)


# -- devices ----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.skipif("RMSPROP_TEST_CPU_DEVICES" in os.environ, reason="runs in the parent")
def test_across_devices():
    """This file and the regression cases again in a process with two CPU
    devices (tests/conftest.py makes them), where variables are drawn on
    either."""
    result = run_python(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_differential.py",
         "tests/test_differential_cases.py", "-k", "not fit"],
        env=dict(RMSPROP_TEST_CPU_DEVICES="2", TF_CPP_MIN_LOG_LEVEL="2"), merge_output=True,
        timeout=1800 if _PROFILE == "quick" else 6 * 3600)
    assert result.returncode == 0, result.stdout[-20000:]
