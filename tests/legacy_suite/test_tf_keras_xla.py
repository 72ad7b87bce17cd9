"""keras_optimizer.legacy.RMSprop inside XLA (jit_compile=True): the compiled
step calls our kernels and gives the bits of the step without XLA."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import rmsprop_op
from keras_optimizer.legacy import RMSprop

pytestmark = pytest.mark.skipif("CPU" not in rmsprop_op.XLA_KERNELS,
                                reason="no XLA kernels for this TensorFlow")


def _applier(opt, variables, grads):
    def apply():
        opt.apply_gradients(zip(grads, variables))
    return apply


@pytest.mark.parametrize("config", [dict(), dict(momentum=0.9), dict(momentum=0.5, centered=True)],
                         ids=str)
def test_apply_gradients_under_xla_is_the_op_bit_for_bit(config):
    rng = np.random.default_rng(0)
    initial = [rng.standard_normal(s).astype(np.float32) for s in [(16, 8), (8,)]]
    grads = [tf.constant(rng.standard_normal(v.shape).astype(np.float32)) for v in initial]
    sides = []
    for compiled in (True, False):
        variables = [tf.Variable(v) for v in initial]
        opt = RMSprop(learning_rate=0.01, **config)

        step = tf.function(_applier(opt, variables, grads), jit_compile=compiled)
        for _ in range(3):
            step()
        sides.append((variables, step))
    assert "custom_call_target=\"rmsprop_op_apply\"" in \
        sides[0][1].experimental_get_compiler_ir()(stage="hlo")
    for a, b in zip(sides[0][0], sides[1][0]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fit_with_jit_compile():
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.layers.Dense(8, activation="relu", input_shape=(4,)),
                                 tf_keras.layers.Dense(1)])
    model.compile(optimizer=RMSprop(0.01, momentum=0.9), loss="mse", jit_compile=True)
    x = np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32)
    losses = model.fit(x, x.sum(1), epochs=5, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
