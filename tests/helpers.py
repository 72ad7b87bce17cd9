"""Helpers shared by the op tests."""
import numpy as np

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
