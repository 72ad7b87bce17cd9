"""Helpers shared by the tests: values, variables, modes, bit comparisons.
Bundles of an update's variables and the calls of the ops on them are in
tests/bundle.py."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.bundle import Bundle
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
    """A Bundle of the initial values of one update; mg / mom None when absent."""
    scale = NUMPY_DTYPES[dtype]
    return Bundle(random_values(shape, dtype, seed),
                  random_values(shape, dtype, seed + 1, positive=True),
                  random_values(shape, dtype, seed + 2) * scale(0.01) if centered else None,
                  random_values(shape, dtype, seed + 3) * scale(0.1) if with_mom else None)


def as_variables(values, device=None):
    """tf.Variables of `values` (None stays None), on `device` if given; a
    Bundle of them for a Bundle, else a list."""
    if isinstance(values, Bundle):
        return values.variables(device)
    with tf.device(device):
        return [None if v is None else tf.Variable(v) for v in values]


def as_numpy(variables):
    if isinstance(variables, Bundle):
        return variables.numpy()
    return [None if v is None else v.numpy() for v in variables]


def run_in(mode, fn):
    """fn() eagerly ("eager") or inside a tf.function ("function")."""
    if mode == "function":
        def graph_fn():
            fn()  # the op returns an Operation, which a tf.function cannot
        tf.function(graph_fn)()
    else:
        fn()


def assert_bitwise_equal(actual, expected):
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None
            continue
        assert a.shape == e.shape
        np.testing.assert_array_equal(a.view(np.uint8), e.view(np.uint8))


def assert_same_state(got, want, any_zero=False):
    """Lists of stored state (float32, bfloat16, uint8 / int8 codes) bit for
    bit, except that any NaN equals any NaN (plain TF does not canonicalize
    NaNs, the kernels do) and, with `any_zero`, -0.0 equals +0.0."""
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"state variable {i}"
        if a.dtype.kind in "iu":
            np.testing.assert_array_equal(a, b, err_msg=f"state variable {i}")
            continue
        bits = np.uint32 if a.dtype.itemsize == 4 else np.uint16
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        same = (a.view(bits) == b.view(bits)) | (np.isnan(a32) & np.isnan(b32))
        if any_zero:
            same |= (a32 == 0) & (b32 == 0)
        assert same.all(), (f"state variable {i}: {np.count_nonzero(~same)} elements differ, "
                            f"first at {np.argwhere(~same)[0]}: {a[~same][:3]} vs {b[~same][:3]}")


def _keras_has_complex_variables():
    try:
        return keras.Variable(np.zeros(1, np.complex64), dtype="complex64").dtype == "complex64"
    except ValueError:  # "Invalid dtype: complex64"
        return False


# Keras 3.3 to 3.5 refuse complex variables (or store them as float32).
requires_complex_variables = pytest.mark.skipif(
    not _keras_has_complex_variables(), reason=f"Keras {keras.__version__} has no complex variables")


def compact_slot(kind, values, signed, noise_seed=None):
    """A compact slot (rmsprop_op.compact_state) holding float32 `values`,
    stored by the NumPy reference: bfloat16, or int8 codes and scales."""
    from rmsprop_op import compact_state
    from tests import reference
    if kind == "bfloat16":
        return compact_state.Bfloat16State(tf.Variable(values.astype(NUMPY_DTYPES["bfloat16"])),
                                           noise_seed)
    codes, scales = reference.compact_quantize(values, signed)
    return compact_state.Int8State(tf.Variable(codes), tf.Variable(scales))


def consistent_slots(old):
    """Slot values (dict: ms, mg, mom) as a centered update reads compact
    state: the mean square at least the mean gradient's square."""
    if old.get("mg") is not None:
        square = (old["mg"] * old["mg"]).astype(np.float32)
        old = dict(old, ms=np.where(old["ms"] < square, square, old["ms"]))
    return old


def compact_values(kind, slot):
    """The float32 values a compact slot holds, by the NumPy reference."""
    from tests import reference
    if kind == "bfloat16":
        return slot.variable.numpy().astype(np.float32)
    return reference.compact_dequantize(slot.codes.numpy(), slot.scales.numpy(), slot.signed)
