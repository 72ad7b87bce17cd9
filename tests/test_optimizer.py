"""keras_optimizer.RMSprop against keras.optimizers.RMSprop, step by step
(apply_gradients, minimize, slots, errors); model.fit is in
tests/test_optimizer_fit.py."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
from tests.helpers import requires_complex_variables
from tests.reference import rmsprop_step, sparse_rmsprop_step

SHAPES = [(3,), (17, 5), (1,), (4, 4, 3)]


def _normal(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _variables(seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return [keras.Variable(_normal(rng, s, dtype), name=f"v{i}", dtype=dtype)
            for i, s in enumerate(SHAPES)]


def _gradients(step, dtype="float32"):
    rng = np.random.default_rng(1000 + step)
    grads = [_normal(rng, s, dtype) for s in SHAPES]
    grads[0][1] = 0.0  # zero gradients still decay accumulators
    return [tf.constant(g) for g in grads]


def _train(optimizer, steps=100, dtype="float32", compiled=True):
    variables = _variables(dtype=dtype)

    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    run = tf.function(step) if compiled else step
    for s in range(steps):
        run(_gradients(s, dtype))
    return [v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]


def _assert_same_training(kwargs, steps=100, compiled=True, **train_kwargs):
    """Eagerly the two agree bit for bit. In a tf.function, Grappler rewrites
    the stock optimizer's lr*g/sqrt(d) into lr*g*rsqrt(d), which rounds
    differently, so there they agree to float32 round-off. A gradient norm
    (clipnorm, global_clipnorm) is a sum, which ours takes in double and
    TensorFlow in float32: round-off there too."""
    ours_vars, ours_slots = _train(keras_optimizer.RMSprop(**kwargs), steps,
                                   compiled=compiled, **train_kwargs)
    stock_vars, stock_slots = _train(keras.optimizers.RMSprop(**kwargs), steps,
                                     compiled=compiled, **train_kwargs)
    assert len(ours_slots) == len(stock_slots)
    for a, b in zip(ours_vars + ours_slots, stock_vars + stock_slots):
        takes_norm = "clipnorm" in kwargs or "global_clipnorm" in kwargs
        if compiled or takes_norm or np.iscomplexobj(a):  # complex: other division and root algorithms
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
        else:
            np.testing.assert_array_equal(a, b)


CASES = {
    "defaults": {},
    "momentum": dict(momentum=0.9),
    "centered": dict(centered=True),
    "centered_momentum": dict(centered=True, momentum=0.5, learning_rate=0.01),
    "rho_epsilon": dict(rho=0.5, epsilon=1e-3),
    "clipnorm": dict(clipnorm=0.5, momentum=0.9),
    "clipvalue": dict(clipvalue=0.3),
    "global_clipnorm": dict(global_clipnorm=1.0, centered=True),
    "schedule": dict(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9),
                     momentum=0.9),
    "weight_decay": dict(weight_decay=0.05, momentum=0.5),
    "ema": dict(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=7),
    "gradient_accumulation": dict(gradient_accumulation_steps=3, momentum=0.9),
    "loss_scale_factor": dict(loss_scale_factor=4.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dense_trajectory_matches_stock_in_tf_function(name):
    _assert_same_training(CASES[name], compiled=True)


@pytest.mark.parametrize("name", list(CASES))
def test_dense_trajectory_matches_stock_bit_for_bit_eagerly(name):
    _assert_same_training(CASES[name], steps=30, compiled=False)


def test_callable_learning_rate():
    lr = tf.Variable(0.01)
    _assert_same_training(dict(learning_rate=lambda: lr * 2.0, momentum=0.9), steps=20)


def test_float64_variables():
    _assert_same_training(dict(momentum=0.9), steps=20, dtype="float64")


COMPLEX_CASES = ["defaults", "momentum", "centered", "centered_momentum"]


@requires_complex_variables
@pytest.mark.parametrize("compiled", [True, False], ids=["tf_function", "eager"])
@pytest.mark.parametrize("name", COMPLEX_CASES)
def test_complex64_trajectory_matches_stock(name, compiled):
    _assert_same_training(CASES[name], dtype="complex64", compiled=compiled)


@requires_complex_variables
@pytest.mark.parametrize("name", COMPLEX_CASES)
def test_complex128_follows_the_formula_exactly(name):
    """Bit for bit the NumPy reference in complex128. (Stock Keras 3 rounds
    parts of a complex128 update to complex64: its type promotion makes
    `0.9 * x` complex64 for a complex128 x. tf_keras and TensorFlow's ops
    keep complex128, as we do.)"""
    kwargs = CASES[name]
    ours = _variables(dtype="complex128")
    opt = keras_optimizer.RMSprop(**kwargs)
    expected = [(v.numpy(), np.zeros_like(v.numpy()), np.zeros_like(v.numpy()) if kwargs.get("centered") else None,
                 np.zeros_like(v.numpy()) if kwargs.get("momentum") else None) for v in ours]
    lr = np.float64(np.float32(kwargs.get("learning_rate", 0.001)))  # Keras keeps it in float32
    for step in range(30):
        grads = _gradients(step, "complex128")
        opt.apply_gradients(zip(grads, ours))
        expected = [rmsprop_step(*slots, g.numpy(), lr, opt.rho, opt.momentum, opt.epsilon,
                                 compute_dtype=np.complex128)
                    for slots, g in zip(expected, grads)]
    for v, e in zip(ours, expected):
        np.testing.assert_array_equal(v.numpy(), e[0])


def test_grouped_op_is_used_for_many_dense_variables():
    variables = _variables()
    opt = keras_optimizer.RMSprop(momentum=0.9)

    @tf.function
    def step(grads):
        opt.apply_gradients(zip(grads, variables))

    graph = step.get_concrete_function(_gradients(0)).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("FusedResourceGroupApplyRMSProp") == 1
    assert "FusedResourceApplyRMSProp" not in types


def test_documented_example():
    opt = keras_optimizer.RMSprop(learning_rate=0.1)
    var1 = tf.Variable(10.0)
    loss = lambda: (var1 ** 2) / 2.0  # noqa: E731
    step_count = opt.minimize(loss, [var1]).numpy()
    assert step_count == 1
    np.testing.assert_allclose(var1.numpy(), 9.683772, rtol=0, atol=5e-7)


def test_minimize_with_tape_and_callable_var_list():
    var = tf.Variable([1.0, 2.0])
    opt = keras_optimizer.RMSprop(learning_rate=0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(var ** 2)
    assert opt.minimize(loss, [var], tape=tape).numpy() == 1
    assert opt.minimize(lambda: tf.reduce_sum(var ** 2), lambda: [var]).numpy() == 2
    with pytest.raises(ValueError, match="tape"):
        opt.minimize(tf.constant(1.0), [var])


def test_slots_match_stock_names_and_shapes_and_weights_move_both_ways():
    for kwargs in ({}, dict(momentum=0.9), dict(centered=True, momentum=0.5)):
        stock = keras.optimizers.RMSprop(**kwargs)
        ours = keras_optimizer.RMSprop(**kwargs)
        stock_vars, ours_vars = _variables(), _variables()
        stock.build(stock_vars)
        ours.build(ours_vars)
        assert [v.name for v in ours.variables] == [v.name for v in stock.variables]
        assert [v.shape for v in ours.variables] == [v.shape for v in stock.variables]
        # Train the stock one, continue with ours, and compare with stock only.
        for s in range(5):
            stock.apply_gradients(zip(_gradients(s), stock_vars))
        for ov, sv in zip(ours_vars, stock_vars):
            ov.assign(sv)
        ours.set_weights([v.numpy() for v in stock.variables])
        for s in range(5, 10):
            stock.apply_gradients(zip(_gradients(s), stock_vars))
            ours.apply_gradients(zip(_gradients(s), ours_vars))
        for a, b in zip(ours_vars + ours.variables, stock_vars + stock.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        stock.set_weights([v.numpy() for v in ours.variables])


def test_invalid_arguments_get_keras_errors():
    with pytest.raises(ValueError, match="clipnorm"):
        keras_optimizer.RMSprop(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError):
        keras_optimizer.RMSprop(use_ema=True, ema_momentum=2.0)
    with pytest.raises(ValueError, match="not recognized"):
        keras_optimizer.RMSprop(not_an_argument=1)


def _embedding_grads(step, rows=20, dim=4, batch=9):
    rng = np.random.default_rng(step)
    indices = rng.integers(0, rows // 2, size=batch)  # duplicates; upper half never used
    values = rng.standard_normal((batch, dim)).astype(np.float32)
    return indices, values


@pytest.mark.parametrize("kwargs", [{}, dict(momentum=0.9), dict(centered=True, momentum=0.5)])
def test_sparse_gradients_update_only_batch_rows(kwargs):
    rows, dim = 20, 4
    table0 = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    table = keras.Variable(table0)
    opt = keras_optimizer.RMSprop(learning_rate=0.01, **kwargs)

    @tf.function
    def step(values, indices):
        grad = tf.IndexedSlices(values, indices, dense_shape=tf.constant([rows, dim]))
        opt.apply_gradients([(grad, table)])

    var = table0.copy()
    ms = np.zeros_like(var)
    mg = np.zeros_like(var) if kwargs.get("centered") else None
    mom = np.zeros_like(var) if kwargs.get("momentum") else None
    for s in range(30):
        indices, values = _embedding_grads(s, rows, dim)
        step(tf.constant(values), tf.constant(indices))
        var, ms, mg, mom = sparse_rmsprop_step(var, ms, mg, mom, values, indices, 0.01, 0.9,
                                               kwargs.get("momentum", 0.0), 1e-7,
                                               compute_dtype=np.float32)
    np.testing.assert_array_equal(table.numpy(), var)
    np.testing.assert_array_equal(table.numpy()[rows // 2:], table0[rows // 2:])
