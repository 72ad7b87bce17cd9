"""A variable on a GPU where the GPU kernels cannot run (a driver or GPU
they do not support, no GPU library) is updated by the plain-TensorFlow
mirror of the formula, with one warning, instead of failing every step.

No GPU is needed: the tests make every variable read as on a GPU whose
kernels are missing, and check which ops the optimizer then runs and that
training gives the fused ops' numbers."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
import rmsprop_op
from keras_optimizer import _implementation
from tests.gpu_fallback_support import fallback_warnings, fused_ops_in, pretend_gpu_without_kernels


@pytest.mark.parametrize("device, expected", [
    ("/job:localhost/replica:0/task:0/device:GPU:0", True),
    ("/device:GPU:1", True),
    ("/job:localhost/replica:0/task:0/device:CPU:0", False),
    ("", False),
])
def test_on_gpu_reads_the_variable_device(device, expected):
    class Placed:
        pass

    variable = Placed()
    variable.device = device
    assert _implementation.on_gpu(variable) is expected


def test_cpu_variables_use_the_fused_ops_even_without_gpu_kernels(monkeypatch):
    monkeypatch.setattr(rmsprop_op, "GPU_KERNELS_LOADED", False)
    assert _implementation.ops_for(tf.Variable(1.0)) is rmsprop_op


def _model(seed=0):
    # The Embedding gives sparse gradients; the two Dense layers dense ones
    # of one dtype, which go to the grouped op when the fused ops run.
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,), dtype="int32"),
        keras.layers.Embedding(50, 8),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(3),
    ])


def _data(n=96):
    rng = np.random.default_rng(3)
    return rng.integers(0, 40, size=(n, 6)).astype(np.int32), rng.integers(0, 3, size=n)


def _fit(optimizer):
    model = _model()
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*_data(), batch_size=16, epochs=2, shuffle=False, verbose=0)
    return model


def _traced_step(optimizer, model):
    x, y = _data(16)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(x)
            loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    return step.get_concrete_function()


KWARGS = [dict(), dict(momentum=0.9, centered=True)]


@pytest.mark.parametrize("kwargs", KWARGS, ids=["plain", "centered_momentum"])
def test_fallback_runs_no_fused_op(monkeypatch, kwargs):
    model = _model()
    assert fused_ops_in(_traced_step(keras_optimizer.RMSprop(**kwargs), model))
    pretend_gpu_without_kernels(monkeypatch)
    with pytest.warns(RuntimeWarning, match="GPU kernels are not loaded"):
        traced = _traced_step(keras_optimizer.RMSprop(**kwargs), model)
    assert fused_ops_in(traced) == set()


@pytest.mark.parametrize("kwargs", KWARGS, ids=["plain", "centered_momentum"])
def test_fallback_trains_as_the_fused_ops_with_one_warning(monkeypatch, kwargs):
    fused = _fit(keras_optimizer.RMSprop(learning_rate=0.01, **kwargs))
    pretend_gpu_without_kernels(monkeypatch)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        fallback = _fit(keras_optimizer.RMSprop(learning_rate=0.01, **kwargs))
        _fit(keras_optimizer.RMSprop(learning_rate=0.01, **kwargs))  # a second model: no new warning
    assert len(fallback_warnings(records)) == 1
    for a, b in zip(fallback.weights, fused.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # Sparse semantics kept: embedding rows no batch used are untouched.
    np.testing.assert_array_equal(fallback.weights[0].numpy()[40:], _model().weights[0].numpy()[40:])
