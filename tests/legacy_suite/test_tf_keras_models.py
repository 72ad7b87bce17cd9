"""keras_optimizer.legacy.RMSprop in tf_keras models: compile, fit, save and
load (h5, SavedModel), tf.train.Checkpoint, XLA."""
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_optimizer.legacy import RMSprop
from tests.gpu_fallback_support import fallback_warnings, fused_ops_in, pretend_gpu_without_kernels

Stock = tf_keras.optimizers.legacy.RMSprop


def _data():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 40, size=(64, 6)).astype(np.int32)  # rows 40..49 never used
    labels = rng.integers(0, 3, size=64).astype(np.int32)
    return tokens, labels


def _model():
    # The Embedding gives sparse gradients, the Dense layers dense ones.
    tf_keras.utils.set_random_seed(0)
    return tf.keras.Sequential([
        tf.keras.layers.Embedding(50, 4, input_length=6),
        tf.keras.layers.GlobalAveragePooling1D(),
        tf.keras.layers.Dense(8, activation="relu"),
        tf.keras.layers.Dense(3),
    ])


def _compiled(optimizer, jit_compile=False):
    model = _model()
    model.compile(optimizer=optimizer,
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    return model


def _fit(model, epochs=2):
    return model.fit(*_data(), batch_size=16, epochs=epochs, shuffle=False, verbose=0)


def _assert_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kwargs", [dict(momentum=0.9), dict(momentum=0.5, centered=True)],
                         ids=["momentum", "centered_momentum"])
def test_fit_matches_stock(kwargs):
    ours, stock = _compiled(RMSprop(0.01, **kwargs)), _compiled(Stock(0.01, **kwargs))
    history = _fit(ours)
    _fit(stock)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for x, y in zip(ours.get_weights() + ours.optimizer.get_weights(),
                    stock.get_weights() + stock.optimizer.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # Embedding rows never looked up keep their initial values and zero slots.
    initial = _model().get_weights()[0]
    np.testing.assert_array_equal(ours.get_weights()[0][40:], initial[40:])


class _ComplexEmbedding(tf.keras.layers.Layer):
    """A complex128 embedding table in a real model: sparse complex gradients."""

    def build(self, input_shape):
        rng = np.random.default_rng(5)
        value = (rng.standard_normal((50, 4)) + 1j * rng.standard_normal((50, 4))) * 0.3
        self.table = self.add_weight("table", shape=(50, 4), dtype=tf.complex128,
                                     initializer=tf.keras.initializers.Constant(value))

    def call(self, tokens):
        rows = tf.reduce_mean(tf.gather(self.table, tokens), axis=1)
        return tf.cast(tf.concat([tf.math.real(rows), tf.math.imag(rows)], -1), tf.float32)


@pytest.mark.parametrize("kwargs", [dict(momentum=0.9), dict(momentum=0.5, centered=True)],
                         ids=["momentum", "centered_momentum"])
def test_fit_with_a_complex_weight_matches_stock(kwargs):
    # With momentum both update only the rows in the batch (TensorFlow's
    # sparse training ops for the stock optimizer).
    def compiled(optimizer):
        tf_keras.utils.set_random_seed(0)
        model = tf.keras.Sequential([tf.keras.Input((6,), dtype=tf.int32), _ComplexEmbedding(),
                                     tf.keras.layers.Dense(3)])
        model.compile(optimizer=optimizer,
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    ours, stock = compiled(RMSprop(0.01, **kwargs)), compiled(Stock(0.01, **kwargs))
    history = _fit(ours)
    _fit(stock)
    assert ours.weights[0].dtype == tf.complex128
    assert history.history["loss"][-1] < history.history["loss"][0]
    # To float32 round-off: the float32 Dense layer's updates round as ours
    # and TensorFlow's kernel each do, and feed back into the complex rows.
    for x, y in zip(ours.get_weights() + ours.optimizer.get_weights(),
                    stock.get_weights() + stock.optimizer.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, dict(centered=True), dict(epsilon=1e-3)],
                         ids=["plain", "centered", "large_epsilon"])
def test_fit_without_momentum_matches_stock_on_dense_layers(kwargs):
    # Without momentum stock's sparse path decays every row (ours only the
    # rows in the batch), so this model has dense gradients only.
    def compiled(optimizer):
        tf_keras.utils.set_random_seed(0)
        model = tf.keras.Sequential([tf.keras.Input((6,)),
                                     tf.keras.layers.Dense(8, activation="relu"),
                                     tf.keras.layers.Dense(3)])
        model.compile(optimizer=optimizer,
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    tokens, labels = _data()
    features = tokens.astype(np.float32) / 40.0
    ours, stock = compiled(RMSprop(0.01, **kwargs)), compiled(Stock(0.01, **kwargs))
    for model in (ours, stock):
        model.fit(features, labels, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for x, y in zip(ours.get_weights() + ours.optimizer.get_weights(),
                    stock.get_weights() + stock.optimizer.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs", [{}, dict(momentum=0.9, centered=True)],
                         ids=["plain", "centered_momentum"])
def test_fit_under_xla_agrees(kwargs):
    # Our kernels inside XLA where it can compile them, plain_tf elsewhere:
    # the same formula; XLA's forward and backward passes round differently.
    xla = _compiled(RMSprop(0.01, **kwargs), jit_compile=True)
    graph = _compiled(RMSprop(0.01, **kwargs))
    _fit(xla)
    _fit(graph)
    for x, y in zip(xla.get_weights() + xla.optimizer.get_weights(),
                    graph.get_weights() + graph.optimizer.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(xla.get_weights()[0][40:], _model().get_weights()[0][40:])


def test_h5_save_and_load_resumes_training_bit_for_bit(tmp_path):
    model = _compiled(RMSprop(0.01, momentum=0.9, centered=True, clipnorm=1.0))
    _fit(model, epochs=1)
    path = str(tmp_path / "model.h5")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    assert type(loaded.optimizer) is RMSprop
    assert loaded.optimizer.get_config() == pytest.approx(model.optimizer.get_config())
    _assert_equal(loaded.optimizer.get_weights(), model.optimizer.get_weights())
    _fit(model, epochs=1)
    _fit(loaded, epochs=1)
    _assert_equal(loaded.get_weights() + loaded.optimizer.get_weights(),
                  model.get_weights() + model.optimizer.get_weights())


def test_saved_model_save_and_load(tmp_path):
    # tf_keras restores a SavedModel's optimizer from its config, with fresh
    # slots ("Slots cannot be restored from saved_model"), for the stock
    # optimizer too: training goes on as with a new optimizer.
    model = _compiled(RMSprop(0.01, momentum=0.9, centered=True, clipnorm=1.0))
    _fit(model, epochs=1)
    path = str(tmp_path / "saved_model")
    model.save(path, save_format="tf")
    loaded = tf.keras.models.load_model(path)
    assert type(loaded.optimizer) is RMSprop
    assert loaded.optimizer.get_config() == pytest.approx(model.optimizer.get_config())
    fresh = _compiled(RMSprop.from_config(model.optimizer.get_config()))
    fresh.set_weights(model.get_weights())
    _fit(loaded, epochs=1)
    _fit(fresh, epochs=1)
    _assert_equal(loaded.get_weights() + loaded.optimizer.get_weights(),
                  fresh.get_weights() + fresh.optimizer.get_weights())


def test_model_saved_with_stock_optimizer_continues_with_ours(tmp_path):
    # Same config keys and the same weights in the same order: a model trained
    # and saved with the stock optimizer goes on training with ours.
    kwargs = dict(momentum=0.9, centered=True)
    stock = _compiled(Stock(0.01, **kwargs))
    _fit(stock, epochs=1)
    path = str(tmp_path / "stock.h5")
    stock.save(path)
    loaded = tf.keras.models.load_model(path)
    assert type(loaded.optimizer) is Stock
    ours = _compiled(RMSprop.from_config(loaded.optimizer.get_config()))
    ours.set_weights(loaded.get_weights())
    # What tf_keras's own h5 loader does before set_weights.
    ours.optimizer._create_all_weights(ours.trainable_variables)
    ours.optimizer.set_weights(loaded.optimizer.get_weights())
    _assert_equal(ours.optimizer.get_weights(), stock.optimizer.get_weights())
    _fit(ours, epochs=1)
    _fit(stock, epochs=1)
    for x, y in zip(ours.get_weights() + ours.optimizer.get_weights(),
                    stock.get_weights() + stock.optimizer.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _checkpointed_training(optimizer_class, kwargs, steps):
    var = tf.Variable(np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32))
    optimizer = optimizer_class(**kwargs)
    rng = np.random.default_rng(5)
    for _ in range(steps):
        values = rng.standard_normal((4, 3)).astype(np.float32)
        indices = rng.integers(0, 10, size=4).astype(np.int32)
        grad = tf.IndexedSlices(tf.constant(values), tf.constant(indices), tf.constant([10, 3]))
        optimizer.apply_gradients([(grad, var)])
        optimizer.apply_gradients([(tf.constant(values[:1].repeat(10, 0)), var)])
    return var, optimizer


def test_checkpoint_round_trip(tmp_path):
    kwargs = dict(learning_rate=0.01, momentum=0.9, centered=True)
    var, opt = _checkpointed_training(RMSprop, kwargs, steps=5)
    path = tf.train.Checkpoint(var=var, optimizer=opt).save(str(tmp_path / "ckpt"))
    var2 = tf.Variable(tf.zeros_like(var))
    opt2 = RMSprop(**kwargs)
    tf.train.Checkpoint(var=var2, optimizer=opt2).restore(path).assert_existing_objects_matched()
    for v, o in ((var, opt), (var2, opt2)):
        o.apply_gradients([(tf.ones_like(v), v)])
    _assert_equal(_state(var2, opt2), _state(var, opt))


def _state(var, optimizer):
    return [var.numpy(), optimizer.iterations.numpy()] + [
        optimizer.get_slot(var, name).numpy() for name in ("rms", "momentum", "mg")]


@pytest.mark.parametrize("source, target", [(Stock, RMSprop), (RMSprop, Stock)],
                         ids=["stock_to_ours", "ours_to_stock"])
def test_checkpoints_move_between_stock_and_ours(source, target, tmp_path):
    kwargs = dict(learning_rate=0.01, momentum=0.9, centered=True)
    var, opt = _checkpointed_training(source, kwargs, steps=3)
    path = tf.train.Checkpoint(var=var, optimizer=opt).save(str(tmp_path / "ckpt"))
    var2 = tf.Variable(tf.zeros_like(var))
    opt2 = target(**kwargs)
    status = tf.train.Checkpoint(var=var2, optimizer=opt2).restore(path)
    # The slots are restored when created, at the first step.
    for v, o in ((var, opt), (var2, opt2)):
        o.apply_gradients([(tf.ones_like(v), v)])
    status.assert_consumed()
    for x, y in zip(_state(var2, opt2), _state(var, opt)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, dict(momentum=0.9, centered=True)],
                         ids=["plain", "centered_momentum"])
def test_gpu_without_kernels_falls_back_to_plain_tf(monkeypatch, kwargs):
    # Every variable reads as on a GPU whose kernels are missing: no fused op
    # runs, one warning, and training gives the fused ops' numbers.
    def traced(model):
        batches = iter(tf.data.Dataset.from_tensor_slices(_data()).batch(16))
        return model.train_function.get_concrete_function(batches)

    fused = _compiled(RMSprop(0.01, **kwargs))
    _fit(fused)
    assert fused_ops_in(traced(fused))
    pretend_gpu_without_kernels(monkeypatch)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        fallback = _compiled(RMSprop(0.01, **kwargs))
        _fit(fallback)
    assert len(fallback_warnings(records)) == 1
    assert fused_ops_in(traced(fallback)) == set()
    for x, y in zip(fallback.get_weights() + fallback.optimizer.get_weights(),
                    fused.get_weights() + fused.optimizer.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fallback.get_weights()[0][40:], _model().get_weights()[0][40:])
