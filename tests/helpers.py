"""Helpers shared by the op tests."""
import numpy as np
import tensorflow as tf

import rmsprop_op
from tests.reference import NUMPY_DTYPES


def random_values(shape, dtype, seed, positive=False):
    """Normal values of `dtype` (a NUMPY_DTYPES name); complex ones get a
    random imaginary part too. `positive` gives small positive values (a
    small imaginary part for complex) for mean squares, so that
    ms - mg^2 + epsilon stays positive for real dtypes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if positive:
        x = np.abs(x) * 0.1 + 0.01
    if np.dtype(NUMPY_DTYPES[dtype]).kind == "c":
        x = x + 1j * rng.standard_normal(shape) * (0.01 if positive else 1.0)
    return x.astype(NUMPY_DTYPES[dtype])


def initial_slots(shape, dtype, centered, with_mom, seed=0):
    """Initial values (var, ms, mg, mom) of one update; mg / mom None when absent."""
    scale = NUMPY_DTYPES[dtype]
    return (random_values(shape, dtype, seed),
            random_values(shape, dtype, seed + 1, positive=True),
            random_values(shape, dtype, seed + 2) * scale(0.01) if centered else None,
            random_values(shape, dtype, seed + 3) * scale(0.1) if with_mom else None)


def as_variables(values, device=None):
    """tf.Variables of `values` (None stays None), on `device` if given."""
    with tf.device(device):
        return [None if v is None else tf.Variable(v) for v in values]


def as_numpy(variables):
    return [None if v is None else v.numpy() for v in variables]


def run_in(mode, fn):
    """fn() eagerly ("eager") or inside a tf.function ("function")."""
    if mode == "function":
        def graph_fn():
            fn()  # the op returns an Operation, which a tf.function cannot
        tf.function(graph_fn)()
    else:
        fn()


def apply_update(variables, grad, indices, hyper, **extra):
    """rmsprop_op.update on (var, ms, mg, mom): dense where indices is None;
    momentum 0 where there is no momentum slot."""
    var, ms, mg, mom = variables
    momentum = hyper["momentum"] if mom is not None else 0.0
    return rmsprop_op.update(var, ms, grad, mg=mg, mom=mom, indices=indices, lr=hyper["lr"],
                             rho=hyper["rho"], momentum=momentum, epsilon=hyper["epsilon"],
                             **extra)


def assert_bitwise_equal(actual, expected):
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None
            continue
        assert a.shape == e.shape
        np.testing.assert_array_equal(a.view(np.uint8), e.view(np.uint8))
