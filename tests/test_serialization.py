"""Config, .keras files, checkpoints and SavedModels round trip."""
import copy
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
from tests.processes import ROOT, run_python


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,), dtype="int32"),
        keras.layers.Embedding(30, 4),
        keras.layers.Flatten(),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(1),
    ])


def _data(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 30, size=(64, 6)).astype(np.int32)
    return x, rng.standard_normal((64, 1)).astype(np.float32)


def _optimizer():
    return keras_optimizer.RMSprop(learning_rate=0.01, momentum=0.9, centered=True,
                                   clipnorm=1.0)


def _fit(model, seed):
    model.fit(*_data(seed), batch_size=16, epochs=1, verbose=0, shuffle=False)


def test_config_round_trip():
    opt = keras_optimizer.RMSprop(learning_rate=keras.optimizers.schedules.ExponentialDecay(
        0.1, 100, 0.5), rho=0.8, momentum=0.3, epsilon=1e-5, centered=True, clipvalue=0.5,
        weight_decay=0.01, name="mine")
    config = opt.get_config()
    for key, value in dict(rho=0.8, momentum=0.3, epsilon=1e-5, centered=True, clipvalue=0.5,
                           weight_decay=0.01, name="mine").items():
        assert config[key] == value
    clone = keras_optimizer.RMSprop.from_config(copy.deepcopy(config))  # from_config mutates
    assert clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored, keras_optimizer.RMSprop)
    assert restored.get_config() == config


def test_stock_config_loads_into_ours():
    config = keras.optimizers.RMSprop(momentum=0.5, centered=True).get_config()
    ours = keras_optimizer.RMSprop.from_config(config)
    assert ours.momentum == 0.5 and ours.centered


def test_keras_file_resumes_bit_for_bit(tmp_path):
    model = _model()
    model.compile(optimizer=_optimizer(), loss="mse")
    _fit(model, 1)
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.optimizer, keras_optimizer.RMSprop)
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    _fit(model, 2)
    _fit(restored, 2)
    for a, b in zip(restored.weights + restored.optimizer.variables,
                    model.weights + model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoint_resumes_bit_for_bit(tmp_path):
    model = _model()
    model.compile(optimizer=_optimizer(), loss="mse")
    _fit(model, 1)
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
        str(tmp_path / "ckpt"))
    restored = _model(seed=5)  # different initial weights, overwritten by restore
    restored.compile(optimizer=_optimizer(), loss="mse")
    restored.optimizer.build(restored.trainable_variables)
    tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).restore(
        path).assert_consumed()
    _fit(model, 2)
    _fit(restored, 2)
    for a, b in zip(restored.weights + restored.optimizer.variables,
                    model.weights + model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class _Trainer(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.linspace(-1.0, 1.0, 12), name="w")
        self.table = tf.Variable(tf.reshape(tf.range(20, dtype=tf.float32), [10, 2]) / 10)
        self.opt = keras_optimizer.RMSprop(learning_rate=0.05, momentum=0.5)
        self.opt.build([self.w, self.table])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def train_step(self, ids):
        with tf.GradientTape() as tape:
            rows = tf.gather(self.table, ids)
            loss = tf.reduce_sum(self.w ** 2) + tf.reduce_sum(rows ** 2)
        grads = tape.gradient(loss, [self.w, self.table])
        self.opt.apply_gradients(zip(grads, [self.w, self.table]))
        return loss


def _run_python(code):
    return run_python(code, env=dict(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.mark.subprocess
def test_saved_model_trains_in_a_fresh_process(tmp_path):
    trainer = _Trainer()
    path = str(tmp_path / "saved")
    tf.saved_model.save(trainer, path)
    ids = [1, 3, 3, 7]
    for _ in range(3):
        trainer.train_step(tf.constant(ids))
    expected_w, expected_table = trainer.w.numpy(), trainer.table.numpy()

    result = _run_python(f"""
        import numpy as np, tensorflow as tf
        import rmsprop_op  # registers the ops the SavedModel uses
        loaded = tf.saved_model.load({path!r})
        for _ in range(3):
            loaded.train_step(tf.constant({ids}))
        np.save({str(tmp_path / "w.npy")!r}, loaded.w.numpy())
        np.save({str(tmp_path / "table.npy")!r}, loaded.table.numpy())
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), expected_w)
    np.testing.assert_array_equal(np.load(tmp_path / "table.npy"), expected_table)

    without = _run_python(f"""
        import tensorflow as tf
        tf.saved_model.load({path!r})
    """)
    assert without.returncode != 0
    assert "FusedResource" in without.stderr and "not registered" in without.stderr


@pytest.mark.subprocess
def test_model_export_loads_in_a_fresh_process(tmp_path):
    model = _model()
    model.compile(optimizer=_optimizer(), loss="mse")
    _fit(model, 1)
    path = str(tmp_path / "exported")
    # `verbose` is newer than Keras 3.4, whose export prints nothing to silence.
    quiet = {"verbose": False} if "verbose" in inspect.signature(model.export).parameters else {}
    model.export(path, **quiet)
    x = _data(3)[0][:4]
    expected = model.predict(x, verbose=0)
    result = _run_python(f"""
        import numpy as np, tensorflow as tf
        import rmsprop_op
        loaded = tf.saved_model.load({path!r})
        np.save({str(tmp_path / "y.npy")!r}, loaded.serve(tf.constant({x.tolist()}, tf.int32)).numpy())
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-6)
