"""The installed wheel, used from outside the source tree as a user would."""
import importlib.metadata
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
import rmsprop_op


def _python(code, **env):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_imported_from_the_installed_package():
    for module in (rmsprop_op, keras_optimizer):
        assert "site-packages" in module.__file__, module.__file__
    assert not any(os.path.exists(os.path.join(p, "setup.py")) for p in sys.path if p), \
        "a source tree is on sys.path"


def test_metadata_requires_the_tensorflow_minor_it_was_built_for():
    major, minor = tf.__version__.split(".")[:2]
    version = importlib.metadata.version("rmsprop-op")
    assert version.endswith(f"+tf{major}.{minor}"), version
    requires = importlib.metadata.requires("rmsprop-op")
    assert any(r.replace(" ", "").startswith("tensorflow")
               and f"<{major}.{int(minor) + 1}" in r and f">={major}.{minor}" in r
               for r in requires), requires
    assert rmsprop_op.__version__ == version == keras_optimizer.__version__
    metadata = importlib.metadata.metadata("rmsprop-op")
    assert metadata["License"] == "Apache-2.0" or "Apache-2.0" in metadata.get_all("License-Expression", [])
    files = [str(f) for f in importlib.metadata.files("rmsprop-op")]
    assert any(f.endswith("LICENSE") for f in files), files


def test_documented_example():
    opt = keras_optimizer.RMSprop(learning_rate=0.1)
    var1 = tf.Variable(10.0)
    loss = lambda: (var1 ** 2) / 2.0  # noqa: E731
    assert opt.minimize(loss, [var1]).numpy() == 1
    np.testing.assert_allclose(var1.numpy(), 9.683772, rtol=0, atol=5e-7)


def _fit(optimizer):
    import keras
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = (x @ rng.standard_normal((8, 1))).astype(np.float32)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=False)
    return model, history.history["loss"]


def test_model_fit_matches_the_stock_optimizer():
    import keras
    _, ours = _fit(keras_optimizer.RMSprop(learning_rate=0.01, momentum=0.9))
    _, stock = _fit(keras.optimizers.RMSprop(learning_rate=0.01, momentum=0.9))
    assert ours[-1] < ours[0]
    np.testing.assert_allclose(ours, stock, rtol=1e-4)


def test_jit_compile_runs_the_installed_kernels():
    """Built against a TensorFlow whose wheel has XLA's typed FFI (2.20+), the
    wheel's library has XLA kernels, and a compiled step calls them."""
    wanted = tuple(int(p) for p in tf.__version__.split(".")[:2]) >= (2, 20)
    assert ("CPU" in rmsprop_op.XLA_KERNELS) == wanted
    if not wanted:
        pytest.skip(f"TensorFlow {tf.__version__}: no XLA kernels")
    var, ms = tf.Variable([1.0, 2.0]), tf.Variable([0.0, 0.0])

    def step():
        rmsprop_op.update(var, ms, tf.ones(2), lr=0.1, rho=0.9, epsilon=1e-7)
    compiled = tf.function(step, jit_compile=True)
    assert "rmsprop_op_apply" in compiled.experimental_get_compiler_ir()(stage="hlo")
    compiled()
    expected = tf.Variable([1.0, 2.0]), tf.Variable([0.0, 0.0])
    rmsprop_op.update(*expected, tf.ones(2), lr=0.1, rho=0.9, epsilon=1e-7)
    np.testing.assert_array_equal(var.numpy(), expected[0].numpy())


def test_saved_model_loads_and_trains_in_a_fresh_process(tmp_path):
    class Trainer(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.linspace(-1.0, 1.0, 8))
            self.opt = keras_optimizer.RMSprop(learning_rate=0.05, momentum=0.5)
            self.opt.build([self.w])

        @tf.function(input_signature=[])
        def train_step(self):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(self.w ** 2)
            self.opt.apply_gradients([(tape.gradient(loss, self.w), self.w)])
            return loss

    trainer = Trainer()
    path = str(tmp_path / "saved")
    tf.saved_model.save(trainer, path)
    for _ in range(3):
        trainer.train_step()
    result = _python(f"""
        import numpy as np, tensorflow as tf
        import rmsprop_op  # registers the ops the SavedModel uses
        loaded = tf.saved_model.load({path!r})
        for _ in range(3):
            loaded.train_step()
        np.save({str(tmp_path / "w.npy")!r}, loaded.w.numpy())
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), trainer.w.numpy())


def test_demo_says_what_to_install_without_its_extra():
    try:
        import sklearn  # noqa: F401
        pytest.skip("scikit-learn is installed")
    except ImportError:
        pass
    result = subprocess.run([sys.executable, "-m", "keras_optimizer", "--epochs", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "rmsprop-op[demo]" in result.stderr
    example = subprocess.run([sys.executable, "-m", "keras_optimizer", "--parts", "example"],
                             capture_output=True, text=True, timeout=300)
    assert example.returncode == 0, example.stderr[-3000:]
    assert "step_count = 1, var1 = 9.683772" in example.stdout
