"""Every NaN the kernels store is the one canonical NaN (np.nan's bits:
positive, only the quiet bit set; part by part for complex), whatever NaN the
inputs carried or the processor made, so that stored bits do not depend on
the device (CUDA and x86 make different NaNs)."""
import numpy as np
import pytest
import tensorflow as tf

import rmsprop_op
from tests.bundle import Bundle
from tests.helpers import as_numpy, as_variables
from tests.reference import NUMPY_DTYPES

HYPER = dict(lr=0.01, rho=0.9, epsilon=1e-7)
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _real(dtype):
    return np.zeros((), NUMPY_DTYPES[dtype]).real.dtype


def _odd_nans(dtype, n):
    """n NaNs of the real type of `dtype` unlike the canonical one: quiet
    and signalling, with payloads, some negative."""
    real = _real(dtype)
    uint = _UINT[real.itemsize]
    inf = np.array(np.inf, real).view(uint)
    quiet = np.array(np.nan, real).view(uint) ^ inf
    sign = uint(1) << uint(8 * real.itemsize - 1)
    k = np.arange(n, dtype=uint)
    payload = uint(1) + k % uint(31)  # below the quiet bit in every type
    bits = np.where(k % 2 == 0, inf | quiet | payload, inf | payload)
    bits = np.where(k % 3 == 0, bits | sign, bits).astype(uint)
    out = bits.view(real)
    with np.errstate(invalid="ignore"):
        assert np.isnan(out.astype(np.float64)).all()
    return out


def _values(dtype, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    if np.dtype(NUMPY_DTYPES[dtype]).kind == "c":
        x = x + 1j * rng.standard_normal(n)
    return x.astype(NUMPY_DTYPES[dtype])


def _nan_inputs(dtype, n=64):
    """var, ms, mg, mom, grad: NaNs with odd bits in var and grad, and a
    negative mean square (the root of a negative number: a NaN of the
    processor's own) in some elements."""
    var, ms, mg, mom, grad = (_values(dtype, n, s) for s in range(5))
    dtype_ = ms.dtype
    ms = (np.abs(ms) * 0.1 + 0.01).astype(dtype_) if dtype_.kind != "c" else ms
    nans = _odd_nans(dtype, n)
    var[::4] = nans[::4]
    grad[1::4] = nans[1::4]
    if ms.dtype.kind != "c":
        ms[2::4] = -1.0  # sqrt(ms + eps) of a negative number
    else:
        grad[2::4] = grad[2::4].real + 1j * nans[2::4]
    return var, ms, (mg * 0.01).astype(dtype_), (mom * 0.1).astype(dtype_), grad


def _assert_canonical_nans(arrays):
    for a in arrays:
        if a is None:
            continue
        parts = (a.real, a.imag) if a.dtype.kind == "c" else (a,)
        for part in parts:
            part = np.ascontiguousarray(part)
            with np.errstate(invalid="ignore"):
                nan = np.isnan(part.astype(np.float64))
            canonical = np.array(np.nan, part.dtype).view(_UINT[part.dtype.itemsize])
            assert nan.any()
            got = part.view(_UINT[part.dtype.itemsize])[nan]
            assert (got == canonical).all(), [hex(b) for b in got[got != canonical][:4]]


@pytest.mark.parametrize("dtype", list(NUMPY_DTYPES))
@pytest.mark.parametrize("centered,with_mom", [(False, False), (True, True)])
@pytest.mark.parametrize("kind", ["dense", "sparse", "group"])
def test_stored_nans_are_canonical(dtype, centered, with_mom, kind):
    var, ms, mg, mom, grad = _nan_inputs(dtype)
    values = Bundle(var, ms, mg if centered else None, mom if with_mom else None)
    variables = as_variables(values, "/CPU:0")
    v, s, g_, m = variables
    momentum = 0.5 if with_mom else 0.0
    if kind == "group":
        rmsprop_op.group_apply_rmsprop([v, v_other := tf.Variable(var[:8].copy())],
                                       [g_, tf.Variable(mg[:8].copy())] if centered else None,
                                       [s, tf.Variable(ms[:8].copy())],
                                       [m, tf.Variable(mom[:8].copy())] if with_mom else None,
                                       [tf.constant(grad), tf.constant(grad[:8])],
                                       momentum=momentum, **HYPER)
        assert np.isnan(v_other.numpy().astype(np.complex128)).any()
    elif kind == "sparse":
        rows = np.arange(len(var), dtype=np.int64)
        rmsprop_op.update(v, s, tf.constant(grad), mg=g_, mom=m, indices=tf.constant(rows),
                          momentum=momentum, **HYPER)
    else:
        rmsprop_op.update(v, s, tf.constant(grad), mg=g_, mom=m, momentum=momentum, **HYPER)
    _assert_canonical_nans(as_numpy(variables))
