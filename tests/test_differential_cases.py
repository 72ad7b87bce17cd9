"""The cases the differential harness (tests/test_differential.py) was built
after: each one a case where keras.optimizers.RMSprop works and ours once
failed or differed. Those on two CPU devices run in test_across_devices's
child process (tests/conftest.py makes the devices there).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
from tests.differential import EXACT, Tolerance, compare
from tests.keras3_runs import minimize

Stock = keras.optimizers.RMSprop
Ours = keras_optimizer.RMSprop


def _on_two_devices():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        pytest.skip("needs two CPU devices (test_across_devices runs it)")
    return devices[:2]



EXTRAS = {"none": {}, "weight_decay": dict(weight_decay=0.05),
          "clipnorm+ema": dict(clipnorm=0.5, use_ema=True),
          "loss_scale+clipvalue": dict(loss_scale_factor=4.0, clipvalue=0.3)}


def _side_by_side(body, tolerance=EXACT):
    """compare() on body(cls) -> list of arrays, named by position."""
    def run(cls):
        return [[(str(i), np.asarray(a)) for i, a in enumerate(body(cls))]]
    compare(run, Stock, Ours, tolerance)


def _steps(compiled, fn):
    return tf.function(fn) if compiled else fn


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_variables_on_two_devices(extras, compiled):
    first, second = _on_two_devices()

    def body(cls):
        with tf.device(first):
            a = keras.Variable(np.ones((3, 2), "float32"), name="a")
        with tf.device(second):
            b = keras.Variable(np.full(4, 2.0, "float32"), name="b")
        optimizer = cls(learning_rate=0.1, momentum=0.5, **EXTRAS[extras])
        step = _steps(compiled, lambda g: optimizer.apply(g, [a, b]))
        for i in range(3):
            step([tf.fill((3, 2), 0.1 * (i + 1)), tf.fill((4,), -0.3)])
        return [a.numpy(), b.numpy()] + [v.numpy() for v in optimizer.variables]
    tolerance = Tolerance(2e-5, 1e-6, "graph rewrite; norms") if (compiled or extras == "clipnorm+ema") else EXACT
    _side_by_side(body, tolerance)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
def test_weight_decay_variable_is_read_each_step(compiled):
    def body(cls):
        decay = tf.Variable(0.1)
        x, y = tf.Variable([1.0, 2.0]), tf.Variable(3.0)
        optimizer = cls(learning_rate=0.1, weight_decay=decay, clipvalue=0.4)
        step = _steps(compiled, lambda: optimizer.apply(
            [tf.constant([0.1, 0.2]), tf.constant(0.5)], [x, y]))
        out = []
        for value in (0.1, 0.5, 0.0):
            decay.assign(value)
            step()
            out += [x.numpy(), y.numpy()]
        return out
    _side_by_side(body, Tolerance(2e-5, 1e-7, "graph rewrite") if compiled else EXACT)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_same_variable_twice_in_one_call(extras, compiled):
    def body(cls):
        a, b = tf.Variable([1.0, 2.0]), tf.Variable([1.0])
        optimizer = cls(learning_rate=0.1, **EXTRAS[extras])
        step = _steps(compiled, lambda: optimizer.apply(
            [tf.constant([0.1, 0.2]), tf.constant([5.0]), tf.constant([-0.3, 0.4])], [a, b, a]))
        step()
        step()
        return [a.numpy(), b.numpy()] + [v.numpy() for v in optimizer.variables]
    loose = compiled or extras == "clipnorm+ema"
    _side_by_side(body, Tolerance(2e-5, 1e-7, "graph rewrite; norms") if loose else EXACT)


@pytest.mark.parametrize("make_iterator", [iter, lambda vs: (v for v in vs), lambda vs: map(
    lambda v: v, vs)], ids=["iter", "generator", "map"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_variables_as_one_shot_iterator(extras, make_iterator):
    def body(cls):
        a, b = tf.Variable([1.0, 2.0]), tf.Variable([1.0])
        optimizer = cls(learning_rate=0.1, **EXTRAS[extras])
        for _ in range(2):
            optimizer.apply([tf.constant([0.1, 0.2]), tf.constant([5.0])], make_iterator([a, b]))
        return [a.numpy(), b.numpy(), optimizer.iterations.numpy()]
    _side_by_side(body, Tolerance(1e-6, 1e-7, "norms") if extras == "clipnorm+ema" else EXACT)


@pytest.mark.parametrize("rate", [lambda: 0.1, lambda: 1e-3, lambda: np.float64(0.1), lambda: 3],
                         ids=["python_float", "small_float", "numpy_float64", "python_int"])
@pytest.mark.parametrize("extras", ["none", "weight_decay"])
def test_callable_learning_rate_on_float64(rate, extras):
    def body(cls):
        x = tf.Variable([1.0, -2.0, 0.5], dtype=tf.float64)
        optimizer = cls(learning_rate=rate, momentum=0.5, **EXTRAS[extras])
        for _ in range(3):
            optimizer.apply([tf.constant([0.1, 0.2, -0.3], tf.float64)], [x])
        return [x.numpy()]
    _side_by_side(body)


@pytest.mark.parametrize("kind", ["list", "numpy", "python_scalar"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_list_and_numpy_gradients(kind, extras):
    def body(cls):
        a, b = tf.Variable([1.0, 2.0]), tf.Variable(1.0)
        optimizer = cls(learning_rate=0.1, **EXTRAS[extras])
        grads = {"list": [[0.1, 0.2], [5.0][0]],
                 "numpy": [np.array([0.1, 0.2], np.float32), np.float32(5.0)],
                 "python_scalar": [[0.1, 0.2], 5]}[kind]
        optimizer.apply(grads, [a, b])
        optimizer.apply(grads, [a, b])
        return [a.numpy(), b.numpy()]
    _side_by_side(body, Tolerance(1e-6, 1e-7, "norms") if extras == "clipnorm+ema" else EXACT)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("extras", list(EXTRAS))
def test_subclass_overriding_update_step_is_called(extras, compiled):
    def subclass(cls):
        class Scaled(cls):
            calls = []

            def update_step(self, gradient, variable, learning_rate):
                Scaled.calls.append(variable.name)
                return super().update_step(gradient, variable, learning_rate * 0.5)
        return Scaled

    calls = {}

    def body(cls):
        cls = subclass(cls)
        a, b = tf.Variable([1.0, 2.0], name="a"), tf.Variable([1.0], name="b")
        optimizer = cls(learning_rate=0.1, **EXTRAS[extras])
        step = _steps(compiled, lambda: optimizer.apply(
            [tf.constant([0.1, 0.2]), tf.constant([5.0])], [a, b]))
        step()
        step()
        calls[cls.__mro__[1]] = list(cls.calls)
        return [a.numpy(), b.numpy()]
    loose = compiled or extras == "clipnorm+ema"
    _side_by_side(body, Tolerance(2e-5, 1e-7, "graph rewrite; norms") if loose else EXACT)
    assert calls[Ours] == calls[Stock] and calls[Ours]


@pytest.mark.parametrize("var_list", ["list", "iterator", "callable"])
def test_minimize_with_keras_variables(var_list):
    def body(cls):
        a = keras.Variable(np.array([1.0, -2.0], "float32"), name="a")
        b = keras.Variable(0.5, name="b")
        optimizer = cls(learning_rate=0.1, weight_decay=0.01)
        loss = lambda: tf.reduce_sum(a * a) + b * 3.0  # noqa: E731
        for _ in range(2):
            chosen = {"list": [a, b], "iterator": iter([a, b]), "callable": lambda: [a, b]}[var_list]
            if cls is Stock and var_list == "callable":
                chosen = chosen()
            minimize(optimizer, loss, chosen)
        return [a.numpy(), b.numpy(), optimizer.iterations.numpy()]
    _side_by_side(body)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
def test_a_sparse_gradient_of_no_rows_in_plain_tensorflow(compiled):
    # A batch without ids. Stochastically rounded state runs plain_tf, whose
    # index check once took the argmax of no indices and failed.
    def body(cls):
        table = keras.Variable(np.ones((100, 64), "float32"), name="table")
        kwargs = dict(state_dtype="bfloat16", stochastic_rounding=True) if cls is Ours else {}
        optimizer = cls(learning_rate=0.1, **kwargs)
        grad = tf.IndexedSlices(tf.zeros([0, 64]), tf.zeros([0], tf.int64),
                                tf.constant([100, 64], tf.int64))
        _steps(compiled, lambda: optimizer.apply([grad], [table]))()
        return [table.numpy()]
    _side_by_side(body)
