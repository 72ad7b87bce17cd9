"""keras_optimizer.RMSprop in model.fit against keras.optimizers.RMSprop: dense
and Embedding models, complex weights, XLA, mixed and half precision."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
from tests.helpers import requires_complex_variables


def _embedding_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((6,), dtype="int32"),
        keras.layers.Embedding(50, 8),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1),
    ])
    return model


def _data(n=128):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 40, size=(n, 6)).astype(np.int32)  # rows 40..49 never used
    y = (x.sum(axis=1, keepdims=True) / 100.0).astype(np.float32)
    return x, y


def test_fit_with_embedding_uses_the_sparse_op_and_leaves_unused_rows():
    model = _embedding_model()
    initial = model.layers[0].embeddings.numpy().copy()
    model.compile(optimizer=keras_optimizer.RMSprop(momentum=0.9), loss="mse")
    x, y = _data()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_array_equal(model.layers[0].embeddings.numpy()[40:], initial[40:])
    assert not np.array_equal(model.layers[0].embeddings.numpy()[:40], initial[:40])


def _dense_model(seed=0, dtype=None):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(32, activation="relu", dtype=dtype),
        keras.layers.Dense(3, dtype=dtype),
    ])


def _dense_data(n=256):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, 10)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    return x, y


def _fit(model, optimizer, epochs=2, **compile_kwargs):
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  **compile_kwargs)
    x, y = _dense_data()
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=False)
    return [w.numpy() for w in model.weights]


def test_fit_matches_stock():
    ours = _fit(_dense_model(), keras_optimizer.RMSprop(momentum=0.9, centered=True))
    stock = _fit(_dense_model(), keras.optimizers.RMSprop(momentum=0.9, centered=True))
    for a, b in zip(ours, stock):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _ComplexDense(keras.layers.Layer):
    """A complex64 weight in a real model: real inputs, real outputs."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        rng = np.random.default_rng(5)
        shape = (input_shape[-1], self.units)
        value = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * 0.3
        self.kernel = self.add_weight(shape=shape, dtype="complex64", name="kernel",
                                      initializer=keras.initializers.Constant(value.astype(np.complex64)))

    def call(self, x):
        y = tf.matmul(tf.cast(x, tf.complex64), self.kernel)
        return tf.concat([tf.math.real(y), tf.math.imag(y)], axis=-1)


@requires_complex_variables
@pytest.mark.parametrize("kwargs", [dict(momentum=0.9), dict(centered=True, momentum=0.5)])
def test_fit_with_a_complex_weight_matches_stock(kwargs):
    def model():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((10,)), _ComplexDense(8), keras.layers.Dense(3)])

    ours_model = model()
    ours = _fit(ours_model, keras_optimizer.RMSprop(learning_rate=0.01, **kwargs))
    stock = _fit(model(), keras.optimizers.RMSprop(learning_rate=0.01, **kwargs))
    assert ours_model.weights[0].dtype == "complex64"
    assert not np.array_equal(ours[0], model().weights[0].numpy())  # it trained
    for a, b in zip(ours, stock):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@requires_complex_variables
def test_fit_with_a_complex_weight_under_xla_matches_the_fused_ops():
    def model():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((10,)), _ComplexDense(8), keras.layers.Dense(3)])

    kwargs = dict(learning_rate=0.01, momentum=0.9, centered=True)
    xla = _fit(model(), keras_optimizer.RMSprop(**kwargs), jit_compile=True)
    fused = _fit(model(), keras_optimizer.RMSprop(**kwargs))
    for a, b in zip(xla, fused):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_eager_fit_matches_stock_bit_for_bit():
    ours = _fit(_dense_model(), keras_optimizer.RMSprop(momentum=0.9), epochs=1, run_eagerly=True)
    stock = _fit(_dense_model(), keras.optimizers.RMSprop(momentum=0.9), epochs=1,
                 run_eagerly=True)
    for a, b in zip(ours, stock):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [dict(momentum=0.9), dict(centered=True)])
def test_fit_under_xla_matches_the_fused_ops(kwargs):
    """jit_compile=True: our kernels inside XLA where it can compile them
    (tests/test_xla.py), the plain-TF mirror of the formula elsewhere."""
    xla = _fit(_dense_model(), keras_optimizer.RMSprop(**kwargs), jit_compile=True)
    fused = _fit(_dense_model(), keras_optimizer.RMSprop(**kwargs), jit_compile=False)
    for a, b in zip(xla, fused):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_xla_sparse_update_touches_only_batch_rows():
    model = _embedding_model()
    initial = model.layers[0].embeddings.numpy().copy()
    model.compile(optimizer=keras_optimizer.RMSprop(momentum=0.9), loss="mse", jit_compile=True)
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.layers[0].embeddings.numpy()[40:], initial[40:])
    reference = _embedding_model()
    reference.compile(optimizer=keras_optimizer.RMSprop(momentum=0.9), loss="mse",
                      jit_compile=False)
    reference.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for a, b in zip(model.weights, reference.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_mixed_float16_policy_and_loss_scale_optimizer():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        ours = _fit(_dense_model(), keras.optimizers.LossScaleOptimizer(
            keras_optimizer.RMSprop(momentum=0.9)))
        stock = _fit(_dense_model(), keras.optimizers.LossScaleOptimizer(
            keras.optimizers.RMSprop(momentum=0.9)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for a, b in zip(ours, stock):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_variables_use_the_op_directly(dtype):
    ours = _fit(_dense_model(dtype=dtype), keras_optimizer.RMSprop(momentum=0.9))
    stock = _fit(_dense_model(dtype=dtype), keras.optimizers.RMSprop(momentum=0.9))
    # Ours computes in float32 and rounds once; stock rounds every operation.
    tol = 2e-2 if dtype == "bfloat16" else 5e-3
    for a, b in zip(ours, stock):
        assert a.dtype == np.dtype(dtype) if dtype == "float16" else True
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                   rtol=tol, atol=tol)
