"""README's statement on half precision, measured: ours is the update computed
exactly and rounded once to the half type; stock Keras 3, computing in the
half type, is the side that differs from it."""
import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from keras_optimizer import RMSprop

N = 4000
LR, RHO, MOMENTUM, EPSILON = 0.01, 0.9, 0.9, 1e-7
DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _one_step(optimizer_class, x0, grad, dtype):
    variable = keras.Variable(x0, dtype=dtype)
    optimizer_class(learning_rate=LR, momentum=MOMENTUM).apply([tf.constant(grad)], [variable])
    return np.asarray(variable.numpy())


def _exact_then_rounded(x0, grad, dtype):
    """The first step in float64 (ms and mom start at 0), rounded once."""
    g = grad.astype(np.float64)
    ms = (1 - RHO) * g * g
    return (x0.astype(np.float64) - LR * g / np.sqrt(ms + EPSILON)).astype(dtype)


def _ulps(a, b):
    """Distance in units in the last place of two arrays of a 16-bit type."""
    def ordered(x):
        bits = x.view(np.int16).astype(np.int64)
        return np.where(bits < 0, -32768 - bits, bits)
    return np.abs(ordered(a) - ordered(b))


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_ours_rounds_the_exact_update_once_and_stock_differs(dtype):
    np_dtype = DTYPES[dtype]
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(N).astype(np_dtype)
    grad = rng.standard_normal(N).astype(np_dtype)
    exact = _exact_then_rounded(x0, grad, np_dtype)

    ours = _one_step(RMSprop, x0, grad, dtype)
    np.testing.assert_array_equal(_ulps(ours, exact), 0)

    stock_ulps = _ulps(_one_step(keras.optimizers.RMSprop, x0, grad, dtype), exact)
    differ = (stock_ulps > 0).mean()
    print(f"{dtype}: stock differs from the exact update rounded once on {differ:.1%} of "
          f"{N} elements, by up to {stock_ulps.max()} ulp")
    if dtype == "float16":  # README's numbers
        assert stock_ulps.max() >= 40 and differ > 0.05
    else:
        assert differ > 0
