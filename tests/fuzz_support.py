"""What tests/test_fuzz.py draws and compares with: the reference with the
processor's subnormal handling, bit comparisons and hypothesis strategies
(the calls of the ops are those of tests/bundle.py).

TensorFlow runs every kernel with subnormals flushed to zero (FTZ and DAZ are
set on each thread that executes ops) and NumPy does not, so the reference
runs on arrays whose arithmetic does what the processor does inside the
kernel: subnormal operands of the compute dtype read as zero, and a result
is flushed when it is tiny, which x86 judges on the result rounded to the
format's precision with an unbounded exponent, so a product just below the
smallest normal that rounds up to it in the format is flushed as well.
Storage conversions are exact or rounded in software and are not flushed;
neither are half precision subnormals, which are normal numbers in float32.
"""
import math
import operator
from fractions import Fraction

import numpy as np
import tensorflow as tf
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.bundle import SLOTS, Bundle
from tests.helpers import run_in
from tests.reference import (NUMPY_DTYPES, compute_dtype_of, rmsprop_step,
                             sparse_rmsprop_step)

DTYPES = list(NUMPY_DTYPES)
HYPER_NAMES = ("lr", "rho", "momentum", "epsilon")
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


# --- The reference, with the processor's subnormal handling ---------------

_TINY = {np.dtype(np.float32): np.finfo(np.float32).tiny,
         np.dtype(np.float64): np.finfo(np.float64).tiny}
# Exact results below these are tiny: half an ulp of the binade beneath the
# smallest normal (2**-126 in float32, 2**-1022 in float64) under it.
_TINY_BOUND = {np.dtype(np.float32): Fraction(2)**-126 - Fraction(2)**-151,
               np.dtype(np.float64): Fraction(2)**-1022 - Fraction(2)**-1076}
_EXACT = {np.add: operator.add, np.subtract: operator.sub, np.multiply: operator.mul,
          np.true_divide: operator.truediv}


def _flush(x):
    x = np.asarray(x)
    tiny = _TINY.get(x.dtype)
    if tiny is None:
        return x
    return np.where(np.abs(x) < tiny, np.copysign(np.zeros_like(x), x), x)


def _flush_result(ufunc, args, result):
    """FTZ: `result` of ufunc(*args) with every tiny result zeroed."""
    flushed = _flush(result)
    tiny = _TINY.get(flushed.dtype)
    exact = _EXACT.get(ufunc)
    if tiny is None or exact is None or len(args) != 2:
        return flushed  # sqrt never rounds up to the smallest normal
    # Only a result equal to the smallest normal can come from a tiny one.
    edge = np.argwhere(np.abs(flushed) == tiny)
    if len(edge) == 0:
        return flushed
    a, b = np.broadcast_arrays(*(np.asarray(x) for x in args))
    flushed = np.array(flushed)
    for index in map(tuple, edge):
        value = exact(Fraction(float(a[index])), Fraction(float(b[index])))
        if abs(value) < _TINY_BOUND[flushed.dtype]:
            flushed[index] = -0.0 if value < 0 else 0.0
    return flushed


class _FlushToZero(np.ndarray):
    """An array whose ufuncs see subnormal operands as zero (DAZ) and return
    tiny results as zero (FTZ), in float32 and float64."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = [_flush(x) if isinstance(x, (np.ndarray, np.generic)) else x for x in inputs]
        result = getattr(ufunc, method)(*args, **kwargs)
        if method == "__call__":
            result = _flush_result(ufunc, args, result)
        return _flush(result).view(_FlushToZero)

    def __getitem__(self, index):
        # A 0-d array, not a NumPy scalar: scalar arithmetic would bypass
        # __array_ufunc__.
        item = super().__getitem__(index)
        return item if isinstance(item, np.ndarray) else np.asarray(item).view(_FlushToZero)


def _flushing(x):
    return None if x is None else np.asarray(x).view(_FlushToZero)


def _plain(values):
    return [None if x is None else np.asarray(x) for x in values]


def reference_dense(values, grad, hyper, dtype):
    """values: a Bundle (or the list) of var, ms, mg, mom; returns the new ones."""
    with np.errstate(all="ignore"):
        return _plain(rmsprop_step(*map(_flushing, values), _flushing(grad), **hyper,
                                   compute_dtype=compute_dtype_of(NUMPY_DTYPES[dtype])))


def reference_sparse(values, grad, indices, hyper, dtype):
    with np.errstate(all="ignore"):
        return _plain(sparse_rmsprop_step(*map(_flushing, values), _flushing(grad),
                                          np.asarray(indices), **hyper,
                                          compute_dtype=compute_dtype_of(NUMPY_DTYPES[dtype])))


# --- Comparisons -----------------------------------------------------------

_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _parts(x):
    """Complex values as their (real, imaginary) parts in a last axis."""
    x = np.asarray(x)
    return np.stack([x.real, x.imag], axis=-1) if x.dtype.kind == "c" else x


def _bits(x):
    x = _parts(x)
    return x.view(_UINT[x.dtype.itemsize])


def assert_same_bits(actual, expected, name):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, (name, actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    actual, expected = _parts(actual), _parts(expected)
    # Bits, NaNs included: the kernels store one canonical NaN.
    same = _bits(actual) == _bits(expected)
    if not np.all(same):
        where = tuple(np.argwhere(~same)[0])
        raise AssertionError(
            f"{name}{list(where)}: op gave {actual[where]!r} (bits {_bits(actual)[where]:#x}), "
            f"reference {expected[where]!r} (bits {_bits(expected)[where]:#x}); "
            f"{int(np.sum(~same))} of {same.size} elements differ")


def snapshot(variables):
    return [(v, v.numpy().copy()) for v in variables]


def assert_unchanged(saved):
    for i, (v, before) in enumerate(saved):
        np.testing.assert_array_equal(_bits(v.numpy()), _bits(before),
                                      err_msg=f"variable {i} ({v.name}) changed")


# --- Strategies ------------------------------------------------------------

def examples(fraction):
    """A share of the profile's max_examples (tests/conftest.py), for a test
    that pytest runs once per parameter."""
    return max(10, int(settings.default.max_examples * fraction))


_EDGE_VALUES = [
    0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf,
    5e-324, 1e-310, 2.2250738585072014e-308,     # float64 subnormal / smallest normal
    1e-45, -1e-40, 9.2e-41, 1.1754942e-38, 1.1754944e-38,  # float32 / bfloat16 subnormal
    6e-8, -6.1e-5,                               # float16 subnormal
    65504.0, 65520.0, 3.3895e38, 3.4028235e38, 3.5e38, 1.7e308, -1.7e308,
    1e-20, -1e20, 1.0, -1.0,
]
_EDGE_HYPER = [
    0.0, -0.0, 1.0, 5e-324, 1e-310, 1e-300, 1e-45, 1e-40, 1e-38, 1e-20, 1e-8, 0.5,
    0.9, 0.999, 1.0 - 2**-53, 1.0 + 2**-52, 2.0, 65504.0, 1e20, 3.4e38, 3.5e38, 1e300,
    math.inf, -math.inf, math.nan, -1.0, -1e-7,
]


def _elements(wild):
    tame = st.floats(-4.0, 4.0)
    return st.one_of(tame, st.sampled_from(_EDGE_VALUES), st.floats()) if wild else tame


def draw_array(data, shape, dtype, wild, label, nonnegative=False):
    """Complex values have both parts drawn; `nonnegative` (for a tame ms)
    applies to real values only, since a complex ms may be anything."""
    values = data.draw(hnp.arrays(np.float64, shape, elements=_elements(wild)), label=label)
    if nonnegative and not wild:
        values = np.abs(values)
    with np.errstate(all="ignore"):
        if np.dtype(NUMPY_DTYPES[dtype]).kind == "c":
            imaginary = data.draw(hnp.arrays(np.float64, shape, elements=_elements(wild)),
                                  label=f"{label} imaginary part")
            out = np.empty(np.shape(values), NUMPY_DTYPES[dtype])
            out.real, out.imag = values, imaginary
            return out
        return values.astype(NUMPY_DTYPES[dtype])


def draw_dense_shape(data, label="shape"):
    if data.draw(st.sampled_from([False] * 5 + [True]), label=f"{label} large"):
        # Large enough to be split over the thread pool.
        return data.draw(st.tuples(st.integers(2000, 60000)), label=label)
    return data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5), label=label)


def _same_float32_in_kernel(x):
    """False for the doubles within half an ulp below float32's smallest
    normal: the kernel's conversion (under FTZ) makes them 0 where NumPy's
    float32(x), which the reference uses, gives the smallest normal."""
    return not float(_TINY_BOUND[np.dtype(np.float32)]) <= abs(x) < 2.0**-126


def draw_hyper(data, with_mom):
    wild = data.draw(st.booleans(), label="wild hyperparameters")
    tame = dict(lr=st.floats(1e-6, 1.0), rho=st.floats(0.0, 1.0), momentum=st.floats(0.0, 0.99),
                epsilon=st.one_of(st.sampled_from([1e-7, 1e-3, 1.0]), st.floats(1e-10, 1.0)))
    hyper = {}
    for name in HYPER_NAMES:
        strategy = tame[name]
        if wild:
            strategy = st.one_of(strategy, st.sampled_from(_EDGE_HYPER), st.floats())
        hyper[name] = data.draw(strategy.filter(_same_float32_in_kernel), label=name)
    if not with_mom:
        hyper["momentum"] = 0.0
    # 0-d arrays: TensorFlow caches the tensors it makes of Python floats (and
    # of np.float64, a float subclass) by value, and -0.0 == 0.0, so a -0.0
    # can arrive as the 0.0 of an earlier call.
    hyper = {name: np.array(x, np.float64) for name, x in hyper.items()}
    # An op attr, not a tensor: eager() passes it through.
    hyper["epsilon_after_sqrt"] = data.draw(st.booleans(), label="epsilon_after_sqrt")
    return hyper


def draw_slot_values(data, shape, dtype, centered, with_mom, prefix=""):
    """A Bundle of drawn values."""
    wild = data.draw(st.booleans(), label=f"{prefix}wild values")
    return Bundle(
        draw_array(data, shape, dtype, wild, f"{prefix}var"),
        draw_array(data, shape, dtype, wild, f"{prefix}ms", nonnegative=True),
        draw_array(data, shape, dtype, wild, f"{prefix}mg") if centered else None,
        draw_array(data, shape, dtype, wild, f"{prefix}mom") if with_mom else None,
    )


def eager(value):
    """`value` as an eager tensor, which a tf.function captures as an input.
    Given NumPy values it would embed them as constants, and TensorFlow's
    compression of constant protos takes -0.0 for the default 0.0: an all
    -0.0 gradient would arrive as +0.0."""
    if isinstance(value, dict):
        return {k: eager(v) for k, v in value.items()}
    if isinstance(value, list):
        return [eager(v) for v in value]
    if isinstance(value, bool):
        return value
    return tf.constant(value)


run = run_in  # eagerly or in a tf.function


def assert_matches(variables, expected):
    for name, e in zip(SLOTS, expected):
        if e is not None:
            assert_same_bits(variables[name].numpy(), e, name)


def _bad_indices(index_dtype, rows):
    bad = [-1, -2, rows, rows + 1, INT32_MIN, INT32_MAX]
    if index_dtype == np.int64:
        # 2**32 + r passes a check done on the low 32 bits only.
        bad += [INT64_MIN, INT64_MAX, 2**31, 2**32, -2**32]
        bad += [2**32 + r for r in range(min(rows, 3))]
    return bad


def draw_indices(data, rows, index_dtype, valid):
    """An index vector; with valid=False at least one entry is out of range."""
    if data.draw(st.sampled_from([False] * 5 + [True]), label="many indices") and rows > 0:
        seed = data.draw(st.integers(0, 2**32 - 1), label="index seed")
        n = data.draw(st.integers(100, 3000), label="num indices")
        indices = np.random.default_rng(seed).integers(0, rows, n).tolist()
    elif rows > 0:
        indices = data.draw(st.lists(st.integers(0, rows - 1), max_size=10), label="indices")
    else:
        indices = []
    if not valid:
        for bad in data.draw(st.lists(st.sampled_from(_bad_indices(index_dtype, rows)),
                                      min_size=1, max_size=3), label="bad indices"):
            position = data.draw(st.integers(0, len(indices)), label="bad position")
            indices.insert(position, bad)
    return np.array(indices, dtype=index_dtype)
