"""keras_optimizer.legacy.RMSprop against tf_keras.optimizers.legacy.RMSprop.

What the stock optimizer computes depends on momentum:
- momentum > 0: TensorFlow's ResourceApplyRMSProp / ResourceSparseApply*
  kernels, epsilon inside the square root like ours, sparse updates row-wise
  with duplicates summed. Only the rounding differs (the kernels write
  ms + (g^2 - ms) * (1 - rho)), so we compare within float32 round-off.
- momentum == 0: its own Python formula, lr * g / (sqrt(ms) + epsilon), which
  our ops compute with epsilon_after_sqrt, bit for bit. On sparse gradients it
  decays the accumulators of every row; ours touches only the rows in the
  batch, so sparse trajectories agree where every batch names every row.
"""
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_optimizer.legacy import RMSprop
from tests.reference import rmsprop_step, sparse_rmsprop_step

Stock = tf_keras.optimizers.legacy.RMSprop
SHAPES = [(3,), (17, 5), (1,), (4, 4, 3)]


def test_runs_under_legacy_keras():
    assert os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    assert tf.keras.optimizers.legacy.RMSprop is Stock


def test_documented_example():
    opt = RMSprop(learning_rate=0.1)
    var1 = tf.Variable(10.0)
    loss = lambda: (var1 ** 2) / 2.0  # noqa: E731
    step_count = opt.minimize(loss, [var1]).numpy()
    assert step_count == 1
    assert var1.numpy() == np.float32(9.683772)


def _normal(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _variables(dtype="float32"):
    rng = np.random.default_rng(0)
    return [tf.Variable(_normal(rng, s, dtype), name=f"v{i}") for i, s in enumerate(SHAPES)]


def _gradients(step, dtype="float32", zero=True):
    rng = np.random.default_rng(1000 + step)
    grads = [_normal(rng, s, dtype) for s in SHAPES]
    if zero:
        grads[0][1] = 0.0  # zero gradients still decay accumulators
    return grads


def _train(optimizer, steps=100, compiled=False, dtype="float32", zero=True):
    variables = _variables(dtype)

    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    run = tf.function(step) if compiled else step
    for s in range(steps):
        run([tf.constant(g) for g in _gradients(s, dtype, zero)])
    assert int(optimizer.iterations.numpy()) == steps
    return [v.numpy() for v in variables] + optimizer.get_weights()


def _slot_names(optimizer):
    return [w.name.split("/")[-1] for w in optimizer.weights]


MOMENTUM_CASES = {
    "momentum": dict(momentum=0.9),
    "centered_momentum": dict(centered=True, momentum=0.5, learning_rate=0.01),
    "clipnorm": dict(clipnorm=0.5, momentum=0.9),
    "clipvalue": dict(clipvalue=0.3, momentum=0.2, rho=0.5),
    "global_clipnorm": dict(global_clipnorm=1.0, centered=True, momentum=0.9),
    "decay": dict(decay=0.01, momentum=0.9),
    "schedule": dict(learning_rate=tf_keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9),
                     momentum=0.9),
    "callables": dict(learning_rate=lambda: 0.01, momentum=lambda: 0.5),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("name", list(MOMENTUM_CASES))
def test_dense_with_momentum_matches_stock_to_round_off(name, compiled):
    kwargs = MOMENTUM_CASES[name]
    ours, stock = RMSprop(**kwargs), Stock(**kwargs)
    a, b = _train(ours, compiled=compiled), _train(stock, compiled=compiled)
    assert _slot_names(ours) == _slot_names(stock)
    assert [x.shape for x in a] == [x.shape for x in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_dense_float64_with_momentum_matches_stock():
    kwargs = dict(momentum=0.9, centered=True)
    a = _train(RMSprop(**kwargs), dtype="float64")
    b = _train(Stock(**kwargs), dtype="float64")
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14)


COMPLEX_TOLERANCE = {"complex64": dict(rtol=2e-5, atol=2e-6),
                     "complex128": dict(rtol=1e-12, atol=1e-13)}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("dtype", list(COMPLEX_TOLERANCE))
@pytest.mark.parametrize("kwargs", [{}, dict(centered=True), dict(momentum=0.9),
                                    dict(momentum=0.5, centered=True, learning_rate=0.01)],
                         ids=["plain", "centered", "momentum", "centered_momentum"])
def test_dense_complex_matches_stock(kwargs, dtype, compiled):
    """TensorFlow's complex semantics (g^2 = g*g, principal root) to round-off:
    TensorFlow's complex division and root are other algorithms than ours."""
    a = _train(RMSprop(**kwargs), dtype=dtype, compiled=compiled)
    b = _train(Stock(**kwargs), dtype=dtype, compiled=compiled)
    assert [x.dtype for x in a] == [x.dtype for x in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, **COMPLEX_TOLERANCE[dtype])


PLAIN_CASES = {
    "defaults": {},
    "centered": dict(centered=True),
    "rho": dict(rho=0.3, learning_rate=0.01),
    "clipvalue": dict(clipvalue=0.3),
    "global_clipnorm": dict(global_clipnorm=1.0, centered=True),
    "decay": dict(decay=0.01),
    "schedule": dict(learning_rate=tf_keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("name", list(PLAIN_CASES))
def test_dense_without_momentum_matches_stock_bit_for_bit(name, compiled):
    # Both divide by sqrt(ms) + epsilon; zero gradients included.
    ours, stock = RMSprop(**PLAIN_CASES[name]), Stock(**PLAIN_CASES[name])
    a = _train(ours, compiled=compiled)
    b = _train(stock, compiled=compiled)
    assert _slot_names(ours) == _slot_names(stock)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_epsilon_placement_shows_where_ms_is_small():
    # A large epsilon against small gradients: sqrt(ms) + eps and
    # sqrt(ms + eps) differ by far more than round-off, and we follow stock.
    kwargs = dict(epsilon=1e-2, learning_rate=0.1)
    var_values = [np.float32([1.0, -1.0])] * 3
    grad = tf.constant([1e-3, -2e-3])
    results = []
    for opt in (RMSprop(**kwargs), Stock(**kwargs), RMSprop(momentum=0.5, **kwargs),
                Stock(momentum=0.5, **kwargs)):
        var = tf.Variable(var_values[0])
        for _ in range(3):
            opt.apply_gradients([(grad, var)])
        results.append(var.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[2], results[3], rtol=1e-6)
    assert np.all(np.abs(results[0] - results[2]) > 1e-4)


def _f32(x):
    return float(np.float32(x))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("kwargs", [{}, dict(centered=True), dict(rho=0.5, epsilon=1e-3)],
                         ids=["defaults", "centered", "rho_epsilon"])
def test_dense_without_momentum_matches_reference_bit_for_bit(kwargs, compiled):
    # Coefficients are float32 tensors as in the stock optimizer, so 1 - rho
    # is 1 - float32(rho).
    lr, rho, eps = 0.001, kwargs.get("rho", 0.9), kwargs.get("epsilon", 1e-7)
    centered = kwargs.get("centered", False)
    got = _train(RMSprop(**kwargs), steps=30, compiled=compiled)
    variables = [v.numpy() for v in _variables()]
    ms = [np.zeros_like(v) for v in variables]
    mg = [np.zeros_like(v) for v in variables] if centered else [None] * len(variables)
    for s in range(30):
        for i, g in enumerate(_gradients(s)):
            variables[i], ms[i], mg[i], _ = rmsprop_step(
                variables[i], ms[i], mg[i], None, g, _f32(lr), _f32(rho), 0.0, _f32(eps),
                compute_dtype=np.float32, epsilon_after_sqrt=True)
    expected = variables + [np.int64(30)] + ms + (mg if centered else [])
    assert len(got) == len(expected)
    for x, y in zip(got, expected):
        np.testing.assert_array_equal(x, y)


def test_slots_and_config_match_stock():
    for kwargs in ({}, dict(momentum=0.9), dict(centered=True),
                   dict(momentum=0.5, centered=True, clipnorm=1.0, decay=0.1)):
        ours, stock = RMSprop(**kwargs), Stock(**kwargs)
        _train(ours, steps=1)
        _train(stock, steps=1)
        assert _slot_names(ours) == _slot_names(stock)
        assert ours.get_config() == stock.get_config()
        assert RMSprop.from_config(stock.get_config()).get_config() == stock.get_config()
        assert Stock.from_config(ours.get_config()).get_config() == ours.get_config()


def test_momentum_out_of_range_is_rejected_like_stock():
    with pytest.raises(ValueError, match="momentum"):
        Stock(momentum=1.5)
    with pytest.raises(ValueError, match="momentum"):
        RMSprop(momentum=1.5)


def test_compact_state_is_refused_with_where_to_find_it():
    for kwargs in (dict(state_dtype="int8"), dict(stochastic_rounding=True)):
        with pytest.raises(TypeError, match="Keras 3"):
            RMSprop(**kwargs)


# Sparse: rows 9..11 are never in a batch, rows 0..8 now and then, with
# duplicates in every batch.
ROWS, COLS, NEVER = 12, 3, 9


def _sparse_batches(steps, dtype="float32"):
    rng = np.random.default_rng(7)
    batches = []
    for _ in range(steps):
        indices = rng.integers(0, NEVER, size=6).astype(np.int32)
        indices[-1] = indices[0]
        batches.append((_normal(rng, (6, COLS), dtype), indices))
    return batches


def _sparse_initial(dtype="float32"):
    return _normal(np.random.default_rng(3), (ROWS, COLS), dtype)


def _train_sparse(optimizer, steps=100, compiled=False, dtype="float32"):
    var = tf.Variable(_sparse_initial(dtype))

    def step(values, indices):
        grad = tf.IndexedSlices(values, indices, tf.constant([ROWS, COLS]))
        optimizer.apply_gradients([(grad, var)])

    run = tf.function(step) if compiled else step
    for values, indices in _sparse_batches(steps, dtype):
        run(tf.constant(values), tf.constant(indices))
    return [var.numpy()] + optimizer.get_weights()[1:]


SPARSE_MOMENTUM_CASES = {
    "momentum": dict(momentum=0.9, learning_rate=0.01),
    "centered_momentum": dict(momentum=0.5, centered=True, learning_rate=0.01),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("name", list(SPARSE_MOMENTUM_CASES))
def test_sparse_with_momentum_matches_stock_to_round_off(name, compiled):
    # Both sum duplicates and update only the rows in the batch.
    kwargs = SPARSE_MOMENTUM_CASES[name]
    ours = _train_sparse(RMSprop(**kwargs), compiled=compiled)
    stock = _train_sparse(Stock(**kwargs), compiled=compiled)
    for x, y in zip(ours, stock):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours[0][NEVER:], _sparse_initial()[NEVER:])
    for slot in ours[1:]:
        np.testing.assert_array_equal(slot[NEVER:], 0.0)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("dtype", list(COMPLEX_TOLERANCE))
@pytest.mark.parametrize("name", list(SPARSE_MOMENTUM_CASES))
def test_sparse_complex_with_momentum_matches_stock(name, dtype, compiled):
    kwargs = SPARSE_MOMENTUM_CASES[name]
    ours = _train_sparse(RMSprop(**kwargs), compiled=compiled, dtype=dtype)
    stock = _train_sparse(Stock(**kwargs), compiled=compiled, dtype=dtype)
    for x, y in zip(ours, stock):
        np.testing.assert_allclose(x, y, **COMPLEX_TOLERANCE[dtype])
    np.testing.assert_array_equal(ours[0][NEVER:], _sparse_initial(dtype)[NEVER:])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("kwargs", [dict(learning_rate=0.01),
                                    dict(learning_rate=0.01, centered=True),
                                    dict(momentum=0.9, centered=True, learning_rate=0.01)],
                         ids=["plain", "centered", "centered_momentum"])
def test_sparse_matches_row_wise_reference_bit_for_bit(kwargs, compiled):
    got = _train_sparse(RMSprop(**kwargs), compiled=compiled)
    centered, momentum = kwargs.get("centered", False), kwargs.get("momentum", 0.0)
    var = _sparse_initial()
    ms = np.zeros_like(var)
    mg = np.zeros_like(var) if centered else None
    mom = np.zeros_like(var) if momentum else None
    for values, indices in _sparse_batches(100):
        var, ms, mg, mom = sparse_rmsprop_step(
            var, ms, mg, mom, values, indices, _f32(kwargs["learning_rate"]), _f32(0.9),
            _f32(momentum), _f32(1e-7), compute_dtype=np.float32,
            epsilon_after_sqrt=not momentum)
    expected = [var, ms] + ([mom] if momentum else []) + ([mg] if centered else [])
    assert len(got) == len(expected)
    for x, y in zip(got, expected):
        np.testing.assert_array_equal(x, y)


def _covering_batches(steps):
    # Every row in every batch, in shuffled order, some twice.
    rng = np.random.default_rng(11)
    for _ in range(steps):
        indices = np.concatenate([rng.permutation(ROWS), rng.integers(0, ROWS, 4)])
        rng.shuffle(indices)
        yield rng.standard_normal((len(indices), COLS)).astype(np.float32), indices.astype(np.int32)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("kwargs", [dict(learning_rate=0.01), dict(learning_rate=0.01, centered=True),
                                    dict(learning_rate=0.01, epsilon=1e-2)],
                         ids=["plain", "centered", "large_epsilon"])
def test_sparse_without_momentum_matches_stock_where_batches_cover_every_row(kwargs, compiled):
    # Stock decays every row's accumulators; where every row is in every
    # batch that is also what ours does, so the trajectories agree.
    results = []
    for opt in (RMSprop(**kwargs), Stock(**kwargs)):
        var = tf.Variable(_sparse_initial())

        def step(values, indices):
            grad = tf.IndexedSlices(values, indices, tf.constant([ROWS, COLS]))
            opt.apply_gradients([(grad, var)])

        run = tf.function(step) if compiled else step
        for values, indices in _covering_batches(100):
            run(tf.constant(values), tf.constant(indices))
        results.append([var.numpy()] + opt.get_weights()[1:])
    for x, y in zip(*results):
        if compiled:  # Grappler rewrites the stock graph's arithmetic a little
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(x, y)


def test_stock_sparse_without_momentum_decays_rows_not_in_the_batch():
    # Why the sparse no-momentum case is checked against the reference: the
    # stock optimizer multiplies the whole rms slot by rho every step.
    var_ours, var_stock = tf.Variable(_sparse_initial()), tf.Variable(_sparse_initial())
    ours, stock = RMSprop(), Stock()
    for var, opt in ((var_ours, ours), (var_stock, stock)):
        for indices in ([0, 1], [1, 1]):
            grad = tf.IndexedSlices(tf.ones((2, COLS)), tf.constant(indices),
                                    tf.constant([ROWS, COLS]))
            opt.apply_gradients([(grad, var)])
    rms_ours, rms_stock = ours.get_slot(var_ours, "rms"), stock.get_slot(var_stock, "rms")
    # Row 0 was in the first batch only: ours keeps its rms, stock decays it.
    np.testing.assert_array_equal(rms_ours[0].numpy(), np.float32(1 - np.float32(0.9)))
    assert np.all(rms_stock[0].numpy() < rms_ours[0].numpy())


def test_sparse_duplicates_reach_our_op_unsummed():
    opt = RMSprop(momentum=0.9)
    var = tf.Variable(_sparse_initial())

    @tf.function
    def step(values, indices):
        opt.apply_gradients([(tf.IndexedSlices(values, indices, tf.constant([ROWS, COLS])), var)])

    graph = step.get_concrete_function(tf.TensorSpec([None, COLS], tf.float32),
                                       tf.TensorSpec([None], tf.int32)).graph
    op_types = {op.type for op in graph.get_operations()}
    for f in graph._functions.values():
        op_types |= {node.op for node in f.definition.node_def}
    assert "FusedResourceSparseApplyRMSProp" in op_types
    assert "Unique" not in op_types


def test_mixed_precision_loss_scale_optimizer():
    opt = tf_keras.mixed_precision.LossScaleOptimizer(RMSprop(learning_rate=0.01, momentum=0.9))
    var = tf.Variable([1.0, -2.0])
    with tf.GradientTape() as tape:
        loss = opt.get_scaled_loss(tf.reduce_sum(var ** 2))
    grads = opt.get_unscaled_gradients(tape.gradient(loss, [var]))
    opt.apply_gradients(zip(grads, [var]))
    assert np.all(np.abs(var.numpy()) < [1.0, 2.0])


def test_api_is_stocks():
    """Constructor (names, defaults, order), public surface and config keys of
    tf_keras's legacy RMSprop, with nothing added or missing."""
    import inspect
    stock_cls = tf_keras.optimizers.legacy.RMSprop
    ours_sig = inspect.signature(RMSprop.__init__).parameters
    stock_sig = inspect.signature(stock_cls.__init__).parameters
    assert [(p.name, p.default, p.kind) for p in ours_sig.values()] == \
        [(p.name, p.default, p.kind) for p in stock_sig.values()]
    public = lambda cls: {n for n in dir(cls) if not n.startswith("_")}  # noqa: E731
    assert public(RMSprop) == public(stock_cls)
    assert set(RMSprop(momentum=0.5).get_config()) == set(stock_cls(momentum=0.5).get_config())
    assert RMSprop().get_config()["name"] == stock_cls().get_config()["name"]
