"""Keras's steps around the update fused into the grouped op: loss-scale
unscaling, clipnorm / global_clipnorm / clipvalue, weight decay and EMA.

Against stock Keras 3 over 100 steps for every combination, bit for bit
eagerly where no norm is taken (a norm is a reduction, summed in double by
FusedGradientSquaredNorms and in float32 by TensorFlow, so clip factors
differ in the last bits); the op against the NumPy reference, every real
dtype; its errors; and the cases Keras keeps (sparse gradients, gradient
accumulation, missing gradients, XLA).
"""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
import rmsprop_op
from tests.helpers import compact_slot, compact_values, consistent_slots
from tests.reference import NUMPY_DTYPES, rmsprop_step_with_extras

VARIANTS = {
    "plain": dict(),
    "momentum": dict(momentum=0.9),
    "centered": dict(centered=True),
    "centered+momentum": dict(centered=True, momentum=0.5),
}
LOSS_SCALE = {"": {}, "loss_scale": dict(loss_scale_factor=64.0)}
CLIPPING = {"": {}, "clipnorm": dict(clipnorm=1.0), "global_clipnorm": dict(global_clipnorm=1.5),
            "clipvalue": dict(clipvalue=0.02)}
DECAY = {"": {}, "weight_decay": dict(weight_decay=0.05)}
EMA = {"": {}, "ema": dict(use_ema=True, ema_momentum=0.9)}
COMBINATIONS = {
    "+".join(filter(None, names)) or "none": {**LOSS_SCALE[a], **CLIPPING[b], **DECAY[c], **EMA[d]}
    for names in itertools.product(LOSS_SCALE, CLIPPING, DECAY, EMA)
    for a, b, c, d in [names]
}


SHAPES = ((24, 17), (17,))  # a kernel and a bias


def _variables(dtype="float32", shapes=SHAPES):
    rng = np.random.default_rng(0)
    return [keras.Variable(rng.standard_normal(shape).astype(dtype), name=name)
            for shape, name in zip(shapes, ("kernel", "bias"))]


def _gradients(step, scale=1.0, dtype="float32", shapes=SHAPES):
    rng = np.random.default_rng(100 + step)
    # Every third step small, so that clipnorm clips some steps and not others.
    size = 0.01 if step % 3 == 0 else 2.0
    return [tf.constant((rng.standard_normal(s) * size * scale).astype(dtype)) for s in shapes]


def _train(cls, kwargs, steps, compiled, dtype="float32", shapes=SHAPES, all_state=False):
    """The variables after `steps` steps, then the EMA's or, with all_state,
    every variable of the optimizer."""
    variables = _variables(dtype, shapes)
    optimizer = cls(learning_rate=0.01, **kwargs)
    optimizer.build(variables)
    scale = kwargs.get("loss_scale_factor") or 1.0

    def step(grads):
        optimizer.apply(grads, variables)
    if compiled:
        step = tf.function(step)
    for i in range(steps):
        step(_gradients(i, scale, dtype, shapes))
    out = [v.numpy() for v in variables]
    if all_state:
        return out + [np.asarray(v.numpy()) for v in optimizer.variables]
    if kwargs.get("use_ema"):
        out += [a.numpy() for a in optimizer._model_variables_moving_average]
    return out


def _assert_matches_stock(kwargs, steps=100, compiled=False, dtype="float32"):
    theirs = _train(keras.optimizers.RMSprop, kwargs, steps, compiled, dtype)
    ours = _train(keras_optimizer.RMSprop, kwargs, steps, compiled, dtype)
    takes_norm = "clipnorm" in kwargs or "global_clipnorm" in kwargs
    for a, b in zip(ours, theirs):
        if compiled or takes_norm:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # 128 cases of 100 steps each
@pytest.mark.parametrize("options", list(COMBINATIONS), ids=list(COMBINATIONS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_combination_matches_stock_eagerly(variant, options):
    _assert_matches_stock({**VARIANTS[variant], **COMBINATIONS[options]})


@pytest.mark.parametrize("options", ["loss_scale+global_clipnorm+weight_decay+ema",
                                     "clipnorm+weight_decay", "clipvalue+ema"])
@pytest.mark.parametrize("variant", ["plain", "centered+momentum"])
def test_matches_stock_in_tf_function(variant, options):
    _assert_matches_stock({**VARIANTS[variant], **COMBINATIONS[options]}, compiled=True)


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_other_dtypes_match_stock(dtype):
    kwargs = dict(momentum=0.9, weight_decay=0.05, use_ema=True, clipvalue=0.02)
    theirs = _train(keras.optimizers.RMSprop, kwargs, 30, False, dtype)
    ours = _train(keras_optimizer.RMSprop, kwargs, 30, False, dtype)
    for a, b in zip(ours, theirs):
        if dtype == "float64":
            np.testing.assert_array_equal(a, b)
        else:
            # Stock rounds every operation to half precision, the op once per
            # step: over 30 steps they drift apart by ~0.02 without extras too
            # (the op's own half precision is exact against the reference below).
            np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=0.05)


def _graph_ops(kwargs, grads_fn=None, variables=None):
    variables = variables or _variables()
    optimizer = keras_optimizer.RMSprop(**kwargs)
    optimizer.build(variables)
    grads = grads_fn() if grads_fn else _gradients(1)

    @tf.function
    def step(grads):
        optimizer.apply(grads, variables)
    graph = step.get_concrete_function(grads).graph
    return {op.type for op in graph.get_operations()}


def test_one_pass_replaces_keras_passes():
    ops = _graph_ops(dict(loss_scale_factor=8.0, global_clipnorm=1.0, weight_decay=0.01,
                          use_ema=True, momentum=0.9))
    assert {"FusedResourceGroupApplyRMSProp", "FusedGradientSquaredNorms"} <= ops
    # Keras's own passes: the weight decay's AssignSub, the unscaling and
    # clipping multiplications of whole gradients, the EMA's assignments.
    assert "AssignSubVariableOp" not in ops
    assert "Square" not in ops
    ops = _graph_ops(dict(clipvalue=0.5))
    assert "ClipByValue" not in ops and "Minimum" not in ops


def test_excluded_variables_are_not_decayed():
    def train(cls):
        variables = _variables()
        optimizer = cls(learning_rate=0.01, weight_decay=0.5)
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        optimizer.build(variables)
        for i in range(20):
            optimizer.apply(_gradients(i), variables)
        return [v.numpy() for v in variables]
    for a, b in zip(train(keras_optimizer.RMSprop), train(keras.optimizers.RMSprop)):
        np.testing.assert_array_equal(a, b)


def test_ema_overwrite_frequency_stays_keras():
    _assert_matches_stock(dict(use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=3),
                          steps=10)


@pytest.mark.parametrize("kwargs", [dict(weight_decay=0.05, global_clipnorm=1.0),
                                    dict(use_ema=True, clipnorm=0.5)])
def test_sparse_gradients_keep_keras_steps(kwargs):
    # Keras decays and averages every row; with an Embedding in the model the
    # whole step keeps Keras's own passes (the README says so).
    def train(cls):
        table = keras.Variable(np.ones((10, 3), np.float32))
        dense = keras.Variable(np.ones(3, np.float32))
        optimizer = cls(learning_rate=0.1, **kwargs)
        optimizer.build([table, dense])
        for i in range(5):
            rows = tf.IndexedSlices(tf.fill([2, 3], 0.5 * (i + 1)), tf.constant([1, 4]),
                                    tf.constant([10, 3]))
            optimizer.apply([rows, tf.fill([3], float(i))], [table, dense])
        return table.numpy(), dense.numpy()
    ours, theirs = train(keras_optimizer.RMSprop), train(keras.optimizers.RMSprop)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)
    # Rows outside the batch: decayed / averaged as stock does; batch rows
    # follow our row-wise update.
    np.testing.assert_allclose(ours[0][[0, 2, 3]], theirs[0][[0, 2, 3]], rtol=1e-6)


def test_gradient_accumulation_keeps_keras_steps():
    _assert_matches_stock(dict(gradient_accumulation_steps=2, weight_decay=0.05,
                               clipvalue=0.02), steps=10)


def test_missing_gradient_keeps_keras_ema():
    def train(cls):
        variables = _variables()
        optimizer = cls(learning_rate=0.01, use_ema=True, ema_momentum=0.5)
        optimizer.build(variables)
        for i in range(4):
            optimizer.apply([_gradients(i)[0]], [variables[0]])
        return [a.numpy() for a in optimizer._model_variables_moving_average]
    for a, b in zip(train(keras_optimizer.RMSprop), train(keras.optimizers.RMSprop)):
        np.testing.assert_array_equal(a, b)


def test_xla_matches_stock():
    """Under XLA the grouped op does the steps where XLA can compile it
    (tests/test_xla.py checks its bits), Keras elsewhere: stock's result."""
    def train(cls):
        variables = _variables()
        optimizer = cls(learning_rate=0.01, weight_decay=0.05, global_clipnorm=1.0)
        optimizer.build(variables)
        step = tf.function(lambda g: optimizer.apply(g, variables), jit_compile=True)
        for i in range(5):
            step(_gradients(i))
        return [v.numpy() for v in variables]
    for a, b in zip(train(keras_optimizer.RMSprop), train(keras.optimizers.RMSprop)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_fit_with_every_option_matches_stock():
    def fit(cls):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=cls(learning_rate=0.01, momentum=0.9, centered=True,
                                    weight_decay=0.01, use_ema=True, global_clipnorm=1.0,
                                    loss_scale_factor=32.0), loss="mse")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 8)).astype(np.float32)
        y = x.sum(axis=1, keepdims=True)
        history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
        return history.history["loss"], model.get_weights()
    (ours_loss, ours_w), (theirs_loss, theirs_w) = fit(keras_optimizer.RMSprop), fit(
        keras.optimizers.RMSprop)
    np.testing.assert_allclose(ours_loss, theirs_loss, rtol=1e-4)
    for a, b in zip(ours_w, theirs_w):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# The op against the NumPy reference.

def _op_case(dtype, centered, momentum, ema, seed=0):
    rng = np.random.default_rng(seed)
    np_dtype = NUMPY_DTYPES[dtype]
    # ms well above mg^2: no NaN roots (NaNs: tests/test_nan_bits.py).
    arrays = dict(var=rng.standard_normal(300), ms=rng.uniform(0.5, 1, 300),
                  mg=rng.standard_normal(300) * 0.1 if centered else None,
                  mom=rng.standard_normal(300) * 0.1 if momentum else None,
                  ema=rng.standard_normal(300) if ema else None,
                  grad=rng.standard_normal(300) * 3)
    return {k: None if v is None else v.astype(np_dtype) for k, v in arrays.items()}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("centered,momentum", [(False, False), (False, True), (True, True)])
@pytest.mark.parametrize("extras", [
    dict(grad_divisor=8.0, clip_multiplier=0.7, clip_divisor=1.3, clip_value=0.25,
         weight_decay=0.1, ema_momentum=0.9),
    dict(clip_value=0.5),
    dict(weight_decay=0.02),
    dict(ema_momentum=0.0),
])
def test_op_matches_reference(dtype, centered, momentum, extras):
    has_ema = "ema_momentum" in extras
    case = _op_case(dtype, centered, momentum, has_ema)
    hyper = dict(lr=0.05, rho=0.9, momentum=0.5 if momentum else 0.0, epsilon=1e-6)
    slots = {k: tf.Variable(v) for k, v in case.items() if v is not None and k != "grad"}
    kwargs = {k: v for k, v in extras.items() if k != "clip_divisor"}
    rmsprop_op.group_apply_rmsprop(
        [slots["var"]], [slots["mg"]] if centered else None, [slots["ms"]],
        [slots["mom"]] if momentum else None, [tf.constant(case["grad"])],
        emas=[slots["ema"]] if has_ema else None,
        clip_divisors=[extras["clip_divisor"]] if "clip_divisor" in extras else None,
        **hyper, **kwargs)
    compute = np.float64 if dtype == "float64" else np.float32
    expected = rmsprop_step_with_extras(
        case["var"], case["ms"], case["mg"], case["mom"], case["ema"], case["grad"], **hyper,
        **extras, compute_dtype=compute)
    for name, want in zip(("var", "ms", "mg", "mom", "ema"), expected):
        if want is not None:
            np.testing.assert_array_equal(slots[name].numpy(), want, err_msg=name)


def test_op_grouped_clip_divisors_apply_per_variable():
    variables = [tf.Variable(np.ones(5, np.float32)) for _ in range(2)]
    mss = [tf.Variable(np.zeros(5, np.float32)) for _ in range(2)]
    grads = [tf.constant(np.full(5, 2.0, np.float32))] * 2
    rmsprop_op.group_apply_rmsprop(variables, None, mss, None, grads, lr=0.1, rho=0.0,
                                   momentum=0.0, epsilon=0.0, clip_divisors=[1.0, 4.0])
    np.testing.assert_array_equal(mss[0].numpy(), np.full(5, 4.0, np.float32))
    np.testing.assert_array_equal(mss[1].numpy(), np.full(5, 0.25, np.float32))


def test_squared_norms_match_float64_sums_and_do_not_depend_on_threads():
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(n).astype(np.float32) for n in (1, 1000, 70_001, 3)]
    got = rmsprop_op.gradient_squared_norms([tf.constant(g) for g in grads], 4.0).numpy()
    want = [np.sum((g / np.float32(4.0)).astype(np.float64) ** 2) for g in grads]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert got.dtype == np.float64
    again = rmsprop_op.gradient_squared_norms([tf.constant(g) for g in grads], 4.0).numpy()
    np.testing.assert_array_equal(got, again)


def test_squared_norms_of_half_and_bfloat16():
    g = np.linspace(-3, 3, 101)
    for dtype in ("float16", "bfloat16"):
        x = g.astype(NUMPY_DTYPES[dtype])
        got = rmsprop_op.gradient_squared_norms([tf.constant(x)]).numpy()[0]
        np.testing.assert_allclose(got, np.sum(x.astype(np.float64) ** 2), rtol=1e-12)


@pytest.mark.parametrize("bad,message", [
    (dict(grad_divisor=0.0), "grad_divisor"),
    (dict(grad_divisor=float("inf")), "grad_divisor"),
    (dict(clip_value=0.0), "clip_value"),
    (dict(clip_value=float("nan")), "clip_value"),
    (dict(weight_decay=float("nan")), "weight_decay"),
    (dict(ema_momentum=tf.constant(1.5, tf.float64)), "ema_momentum"),  # a Python 1.5: ValueError
    (dict(clip_divisors=[1.0, 2.0, 3.0]), "clip_divisors"),
])
def test_op_rejects_bad_extras_and_writes_nothing(bad, message):
    variables = [tf.Variable(np.ones(4, np.float32)) for _ in range(2)]
    mss = [tf.Variable(np.zeros(4, np.float32)) for _ in range(2)]
    emas = [tf.Variable(np.zeros(4, np.float32)) for _ in range(2)]
    grads = [tf.constant(np.ones(4, np.float32))] * 2
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        rmsprop_op.group_apply_rmsprop(variables, None, mss, None, grads, lr=0.1, rho=0.9,
                                       momentum=0.0, epsilon=1e-7, emas=emas, **bad)
    for v in variables:
        np.testing.assert_array_equal(v.numpy(), np.ones(4, np.float32))
    for s in mss + emas:
        np.testing.assert_array_equal(s.numpy(), np.zeros(4, np.float32))


def test_op_refuses_extras_for_complex_variables():
    var = tf.Variable(np.ones(3, np.complex64))
    ms = tf.Variable(np.zeros(3, np.complex64))
    with pytest.raises(tf.errors.UnimplementedError, match="real dtypes"):
        rmsprop_op.group_apply_rmsprop([var], None, [ms], None, [tf.ones(3, tf.complex64)],
                                       lr=0.1, rho=0.9, momentum=0.0, epsilon=1e-7,
                                       weight_decay=0.1)
    np.testing.assert_array_equal(var.numpy(), np.ones(3, np.complex64))


def test_squared_norms_rejects_a_zero_divisor():
    with pytest.raises(tf.errors.InvalidArgumentError, match="divisor"):
        rmsprop_op.gradient_squared_norms([tf.ones(3)], 0.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plain_tf_extras_match_the_op(dtype):
    from rmsprop_op import plain_tf
    results = []
    for impl in (rmsprop_op, plain_tf):
        case = _op_case(dtype, True, True, True, seed=3)
        slots = {k: tf.Variable(v) for k, v in case.items() if k != "grad"}
        impl.group_apply_rmsprop(
            [slots["var"]], [slots["mg"]], [slots["ms"]], [slots["mom"]],
            [tf.constant(case["grad"])], lr=0.05, rho=0.9, momentum=0.5, epsilon=1e-6,
            emas=[slots["ema"]], ema_momentum=0.9, grad_divisor=8.0, clip_multiplier=0.7,
            clip_divisors=[1.3], clip_value=0.25, weight_decay=0.1)
        norms = impl.gradient_squared_norms([tf.constant(case["grad"])], 8.0).numpy()
        results.append(([s.numpy() for s in slots.values()], norms))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)


# With compact state (RMSprop(state_dtype=...)): a variable with compact
# slots gets a compact op of its own, with the same steps in its pass.

def _compact_stored(kind, values, signed):
    """The float32 values a compact slot holds once `values` are stored."""
    from tests import reference
    if kind == "bfloat16":
        return values.astype(NUMPY_DTYPES["bfloat16"]).astype(np.float32)
    return reference.compact_dequantize(*reference.compact_quantize(values, signed), signed)


COMPACT_EXTRAS = [
    dict(grad_divisor=8.0, clip_multiplier=0.7, clip_divisor=1.3, clip_value=0.25,
         weight_decay=0.1, ema_momentum=0.9),
    dict(grad_divisor=4.0),
    dict(clip_value=0.5),
    dict(weight_decay=0.02),
    dict(ema_momentum=0.0),
]


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
@pytest.mark.parametrize("centered,momentum", [(False, False), (False, True), (True, True)])
@pytest.mark.parametrize("extras", COMPACT_EXTRAS)
def test_compact_op_with_extras_matches_reference(kind, centered, momentum, extras):
    """The grouped update of a variable with compact slots and one without,
    with every extra, against the NumPy reference on the decoded state."""
    from rmsprop_op import plain_tf
    rng = np.random.default_rng(11)
    shape = (96, 64)
    has_ema = "ema_momentum" in extras
    hyper = dict(lr=0.05, rho=0.9, momentum=0.5 if momentum else 0.0, epsilon=1e-6)
    kwargs = {k: v for k, v in extras.items() if k != "clip_divisor"}
    divisors = [extras["clip_divisor"], 2.0] if "clip_divisor" in extras else None
    var0 = rng.standard_normal(shape).astype(np.float32)
    small0 = rng.standard_normal(64).astype(np.float32)
    ms0 = rng.uniform(0.5, 1, shape).astype(np.float32)
    mg0 = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    mom0 = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    ema0 = rng.standard_normal(shape).astype(np.float32)
    grad = (rng.standard_normal(shape) * 3).astype(np.float32)
    small_grad = (rng.standard_normal(64) * 3).astype(np.float32)
    results = {}
    for impl in (rmsprop_op, plain_tf):
        var, small = tf.Variable(var0), tf.Variable(small0)
        ms = compact_slot(kind, ms0, False)
        mg = compact_slot(kind, mg0, True) if centered else None
        mom = compact_slot(kind, mom0, True) if momentum else None
        ema, small_ema = tf.Variable(ema0), tf.Variable(small0)
        small_slots = [tf.Variable(np.full(64, 0.7, np.float32)),
                       tf.Variable(np.zeros(64, np.float32)), tf.Variable(np.zeros(64, np.float32))]
        old = consistent_slots(dict(ms=compact_values(kind, ms),
                                    mg=mg and compact_values(kind, mg),
                                    mom=mom and compact_values(kind, mom)))
        impl.group_apply_rmsprop(
            [var, small], [mg, small_slots[1]] if centered else None, [ms, small_slots[0]],
            [mom, small_slots[2]] if momentum else None,
            [tf.constant(grad), tf.constant(small_grad)],
            emas=[ema, small_ema] if has_ema else None, clip_divisors=divisors, **hyper,
            **kwargs)
        results[impl] = [var.numpy(), compact_values(kind, ms)] + [
            compact_values(kind, s) for s in (mg, mom) if s is not None] + [
            ema.numpy(), small.numpy(), small_ema.numpy()]
    expected = rmsprop_step_with_extras(
        var0, old["ms"], old["mg"], old["mom"], ema0 if has_ema else None, grad, **hyper,
        **extras, compute_dtype=np.float32)
    want = [expected[0], _compact_stored(kind, expected[1], False)] + [
        _compact_stored(kind, x, True) for x in expected[2:4] if x is not None]
    got = results[rmsprop_op]
    for i, w in enumerate(want):
        np.testing.assert_array_equal(got[i], w, err_msg=f"{kind} output {i}")
    if has_ema:
        np.testing.assert_array_equal(got[len(want)], expected[4], err_msg="ema")
    for a, b in zip(got, results[plain_tf]):  # plain TF, the path under XLA, the same bits
        np.testing.assert_array_equal(a, b)


def test_compact_op_rejects_bad_extras_and_writes_nothing():
    """A grouped call with compact slots is several ops: what one of them
    would refuse is refused before any runs, with nothing written."""
    shape = (96, 64)
    variables = [tf.Variable(np.ones(shape, np.float32)) for _ in range(2)]
    mss = [compact_slot("int8", np.full(shape, 0.5, np.float32), False) for _ in range(2)]
    codes = mss[0].codes.numpy()
    good = [tf.ones(shape)] * 2
    for bad, message in (
            (dict(emas=[tf.Variable(np.zeros(shape, np.float32)),
                        tf.Variable(np.zeros((96, 65), np.float32))]), "emas\\[1\\]"),
            (dict(grads=[tf.ones(shape), tf.ones((96, 63))]), "grad\\[1\\]"),
            (dict(grad_divisor=0.0), "grad_divisor"),
            (dict(clip_divisors=[1.0, 2.0, 3.0]), "clip_divisors"),
            (dict(variables=[variables[0], variables[0]]), "given twice")):
        kwargs = {"variables": variables, "grads": good, **bad}
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            rmsprop_op.group_apply_rmsprop(kwargs.pop("variables"), None, mss, None,
                                           kwargs.pop("grads"), lr=0.1, rho=0.9, momentum=0.0,
                                           epsilon=1e-7, **kwargs)
        for v, ms in zip(variables, mss):
            np.testing.assert_array_equal(v.numpy(), np.ones(shape, np.float32))
            np.testing.assert_array_equal(ms.codes.numpy(), codes)


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
def test_compact_variables_anywhere_in_a_group_get_their_own_divisor_and_ema(kind):
    """Two compact variables after a full-precision one: each gets its own
    clip divisor and EMA slot, the bits of a group of one."""
    rng = np.random.default_rng(4)
    shapes = [(64,), (96, 64), (80, 64)]
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [tf.constant(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    divisors = [1.5, 3.0, 0.5]
    extras = dict(lr=0.05, rho=0.9, momentum=0.5, epsilon=1e-6, ema_momentum=0.9,
                  weight_decay=0.1, clip_value=0.4)

    def slots(i):
        if i == 0:
            return [tf.Variable(np.full(64, 0.7, np.float32)), tf.Variable(np.zeros(64, np.float32))]
        return [compact_slot(kind, np.full(shapes[i], 0.7, np.float32), False),
                compact_slot(kind, np.zeros(shapes[i], np.float32), True)]

    def state(var, ema, ms, mom):
        return [var.numpy(), ema.numpy()] + [
            x.numpy() for s in (ms, mom) for x in getattr(s, "variables", [s])]
    grouped = [(tf.Variable(v), tf.Variable(v), *slots(i)) for i, v in enumerate(values)]
    rmsprop_op.group_apply_rmsprop(
        [g[0] for g in grouped], None, [g[2] for g in grouped], [g[3] for g in grouped], grads,
        emas=[g[1] for g in grouped], clip_divisors=divisors, **extras)
    for i, v in enumerate(values):
        alone = (tf.Variable(v), tf.Variable(v), *slots(i))
        rmsprop_op.group_apply_rmsprop([alone[0]], None, [alone[2]], [alone[3]], [grads[i]],
                                       emas=[alone[1]], clip_divisors=[divisors[i]], **extras)
        for a, b in zip(state(*grouped[i]), state(*alone)):
            np.testing.assert_array_equal(a, b, err_msg=f"variable {i}")


def _train_compact(cls, kwargs, steps):
    # A kernel with compact state, a bias without.
    return _train(cls, kwargs, steps, False, shapes=((96, 64), (64,)), all_state=True)


class _KerasSteps(keras_optimizer.RMSprop):
    """Overrides update_step: Keras calls it once per variable and runs its
    own steps around it, the path with nothing fused."""

    def update_step(self, gradient, variable, learning_rate):
        return super().update_step(gradient, variable, learning_rate)


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
@pytest.mark.parametrize("options", ["loss_scale+clipvalue+weight_decay+ema", "global_clipnorm",
                                     "clipnorm+weight_decay"])
@pytest.mark.parametrize("variant", ["plain", "centered+momentum"])
def test_compact_state_with_keras_steps_matches_keras_doing_them(state_dtype, options, variant):
    kwargs = {**VARIANTS[variant], **COMBINATIONS[options], "state_dtype": state_dtype}
    fused = _train_compact(keras_optimizer.RMSprop, kwargs, 20)
    keras_steps = _train_compact(_KerasSteps, kwargs, 20)
    assert len(fused) == len(keras_steps)
    takes_norm = "clipnorm" in kwargs or "global_clipnorm" in kwargs
    for a, b in zip(fused, keras_steps):
        if takes_norm and a.dtype == np.float32:
            # The norms: summed in double by the fused op, in float32 by Keras;
            # a last-bit difference can move a bfloat16 slot by one of its steps.
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
        elif not takes_norm:
            np.testing.assert_array_equal(a, b)


def test_stochastic_rounding_with_keras_steps_matches_keras_doing_them():
    """bfloat16 state rounded stochastically stays in plain TensorFlow, with
    the steps in its pass: the bits of Keras doing them."""
    kwargs = dict(momentum=0.9, weight_decay=0.05, use_ema=True, clipvalue=0.02,
                  state_dtype="bfloat16", stochastic_rounding=True)
    for a, b in zip(_train_compact(keras_optimizer.RMSprop, kwargs, 10),
                    _train_compact(_KerasSteps, kwargs, 10)):
        np.testing.assert_array_equal(a, b)


def test_compact_state_with_keras_steps_is_one_pass():
    variables = [keras.Variable(np.ones((96, 64), "float32")), keras.Variable(np.ones(64, "float32"))]
    ops = _graph_ops(dict(loss_scale_factor=8.0, global_clipnorm=1.0, weight_decay=0.01,
                          use_ema=True, momentum=0.9, state_dtype="int8"),
                     grads_fn=lambda: [tf.ones((96, 64)), tf.ones(64)], variables=variables)
    assert {"FusedResourceApplyCompactRMSProp", "FusedResourceGroupApplyRMSProp",
            "FusedGradientSquaredNorms"} <= ops
    assert "AssignSubVariableOp" not in ops and "Square" not in ops
