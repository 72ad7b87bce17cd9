"""The op library against the NumPy references and TensorFlow's own ops."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

import rmsprop_op
from tests.bundle import apply_group, apply_update, hyper_for
from tests.helpers import (as_numpy, as_variables, assert_bitwise_equal, initial_slots,
                           random_values, run_in)
from tests.reference import (NUMPY_DTYPES, compute_dtype_of, rmsprop_step,
                             sparse_rmsprop_step)

HYPER = dict(lr=0.01, rho=0.9, momentum=0.5, epsilon=1e-7)
DTYPES = list(NUMPY_DTYPES)
MODES = ["eager", "function"]


def _apply_dense(variables, grad, hyper, use_locking=False):
    return apply_update(variables, grad, hyper_for(variables, hyper), use_locking=use_locking)


def _apply_sparse(variables, grad, indices, hyper):
    return apply_update(variables, grad, hyper_for(variables, hyper), indices)


VARIANTS = list(itertools.product(DTYPES, MODES, [True, False], [True, False]))


@pytest.mark.parametrize("dtype,mode,with_mom,centered", VARIANTS)
def test_dense_matches_reference(dtype, mode, with_mom, centered):
    shape = (7, 33)  # not a multiple of any vector width
    initial = initial_slots(shape, dtype, centered, with_mom)
    variables = as_variables(initial)
    grad_values = [random_values(shape, dtype, 100 + s) for s in range(3)]
    grad_values[1][2] = 0  # zero gradients still decay ms and move var
    expected = initial
    for g in grad_values:
        run_in(mode, lambda: _apply_dense(variables, tf.constant(g), HYPER))
        momentum = HYPER["momentum"] if with_mom else 0.0
        # Bit for bit: the reference in the op's own compute precision.
        expected = rmsprop_step(*expected, g, HYPER["lr"], HYPER["rho"], momentum,
                                HYPER["epsilon"], compute_dtype_of(NUMPY_DTYPES[dtype]))
        assert_bitwise_equal(as_numpy(variables), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("centered", [False, True])
def test_dense_close_to_float64_formula_over_100_steps(dtype, centered):
    shape = (1000,)
    initial = initial_slots(shape, dtype, centered, True)
    variables = as_variables(initial)
    exact = [None if x is None else x.astype(np.float64) for x in initial]
    for step in range(100):
        g = random_values(shape, dtype, 1000 + step)
        _apply_dense(variables, tf.constant(g), HYPER)
        exact = rmsprop_step(*exact, g.astype(np.float64), **HYPER)
    rtol = 1e-4 if dtype == "float32" else 1e-12
    for actual, reference in zip(as_numpy(variables), exact):
        if reference is not None:
            np.testing.assert_allclose(actual, reference, rtol=rtol, atol=rtol * 1e-2)


def _assert_within_ulps(actual, expected, before, ulps=16):
    """|actual - expected| within `ulps` units in the last place of the largest
    of the old value, the new value and the change (var - mom cancels, so the
    result alone can be far smaller than the rounding errors that went in)."""
    change = np.abs(expected.astype(np.float64) - before)
    scale = np.maximum(np.maximum(np.abs(before), np.abs(expected)), change).astype(expected.dtype)
    bound = ulps * np.spacing(scale)
    assert np.all(np.abs(actual.astype(np.float64) - expected) <= bound), (
        np.max(np.abs(actual.astype(np.float64) - expected) / np.spacing(scale)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("centered", [False, True])
def test_dense_agrees_with_tensorflow_raw_op(dtype, centered):
    """Per step within 16 ulps of ResourceApply(Centered)RMSProp, over 100 steps
    within rtol 1e-5 (float32) / 1e-13 (float64): TensorFlow writes the mean
    square update as ms + (g^2 - ms)(1 - rho), which rounds differently."""
    shape = (4096,)
    initial = initial_slots(shape, dtype, centered, True)
    ours = as_variables(initial)
    theirs = as_variables(initial)
    tf_dtype = tf.as_dtype(dtype)
    for step in range(100):
        g = tf.constant(random_values(shape, dtype, 2000 + step))
        before = as_numpy(theirs)
        _apply_dense(ours, g, HYPER)
        hyper = {k: tf.constant(v, tf_dtype) for k, v in HYPER.items()}
        var, ms, mg, mom = theirs
        if centered:
            tf.raw_ops.ResourceApplyCenteredRMSProp(var=var.handle, mg=mg.handle, ms=ms.handle,
                                                    mom=mom.handle, grad=g, **hyper)
        else:
            tf.raw_ops.ResourceApplyRMSProp(var=var.handle, ms=ms.handle, mom=mom.handle,
                                            grad=g, **hyper)
        if step == 0:
            for a, b, prev in zip(as_numpy(ours), as_numpy(theirs), before):
                if b is not None:
                    _assert_within_ulps(a, b, prev)
    rtol = 1e-5 if dtype == "float32" else 1e-13
    for a, b in zip(as_numpy(ours), as_numpy(theirs)):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 0.1)


SPARSE_VARIANTS = list(itertools.product(DTYPES, MODES, [True, False], [True, False],
                                         [np.int32, np.int64]))


@pytest.mark.parametrize("dtype,mode,with_mom,centered,index_dtype", SPARSE_VARIANTS)
def test_sparse_matches_reference(dtype, mode, with_mom, centered, index_dtype):
    shape = (10, 3, 5)  # N-D rows
    initial = initial_slots(shape, dtype, centered, with_mom)
    variables = as_variables(initial)
    indices = np.array([7, 2, 7, 0, 9, 2, 7], dtype=index_dtype)  # unsorted, duplicates
    g = random_values((len(indices),) + shape[1:], dtype, 300)
    run_in(mode, lambda: _apply_sparse(variables, tf.constant(g), tf.constant(indices), HYPER))
    momentum = HYPER["momentum"] if with_mom else 0.0
    expected = sparse_rmsprop_step(*initial, g, indices, HYPER["lr"], HYPER["rho"], momentum,
                                   HYPER["epsilon"], compute_dtype_of(NUMPY_DTYPES[dtype]))
    assert_bitwise_equal(as_numpy(variables), expected)
    untouched = [r for r in range(shape[0]) if r not in indices]
    for actual, start in zip(as_numpy(variables), initial):
        if start is not None:
            np.testing.assert_array_equal(actual[untouched], start[untouched])


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_1d_variable_and_empty_indices(index_dtype):
    initial = initial_slots((6,), "float32", False, True)
    variables = as_variables(initial)
    _apply_sparse(variables, tf.zeros([0]), tf.constant([], dtype=index_dtype), HYPER)
    assert_bitwise_equal(as_numpy(variables), initial)
    g = np.array([0.5, -1.0, 2.0], np.float32)
    indices = np.array([4, 1, 4], index_dtype)
    _apply_sparse(variables, tf.constant(g), tf.constant(indices), HYPER)
    expected = sparse_rmsprop_step(*initial, g, indices, **HYPER, compute_dtype=np.float32)
    assert_bitwise_equal(as_numpy(variables), expected)


def test_sparse_duplicates_equal_summed_gradient():
    initial = initial_slots((4, 8), "float32", False, True)
    a, b = as_variables(initial), as_variables(initial)
    g = random_values((3, 8), "float32", 5)
    _apply_sparse(a, tf.constant(g), tf.constant([1, 1, 1]), HYPER)
    summed = (g[0] + g[1] + g[2])[None]
    _apply_sparse(b, tf.constant(summed), tf.constant([1]), HYPER)
    assert_bitwise_equal(as_numpy(a), as_numpy(b))


def test_sparse_is_deterministic():
    initial = initial_slots((50, 16), "float32", True, True)
    rng = np.random.default_rng(3)
    indices = rng.integers(0, 50, size=400)
    g = random_values((400, 16), "float32", 6)
    results = []
    for _ in range(3):
        variables = as_variables(initial)
        _apply_sparse(variables, tf.constant(g), tf.constant(indices), HYPER)
        results.append(as_numpy(variables))
    for r in results[1:]:
        assert_bitwise_equal(r, results[0])


def test_sparse_agrees_with_tensorflow_raw_op_without_duplicates():
    initial = initial_slots((20, 4), "float32", False, True)
    ours, theirs = as_variables(initial), as_variables(initial)
    indices = tf.constant([3, 17, 0, 9])
    g = tf.constant(random_values((4, 4), "float32", 8))
    _apply_sparse(ours, g, indices, HYPER)
    var, ms, _, mom = theirs
    tf.raw_ops.ResourceSparseApplyRMSProp(
        var=var.handle, ms=ms.handle, mom=mom.handle, grad=g, indices=indices,
        **{k: tf.constant(v, tf.float32) for k, v in HYPER.items()})
    for a, b, prev in zip(as_numpy(ours), as_numpy(theirs), initial):
        if b is not None:
            _assert_within_ulps(a, b, prev)


def test_large_dense_update_is_sharded_correctly():
    """Large enough to be split over the thread pool."""
    shape = (1 << 20) + 3
    initial = initial_slots((shape,), "float32", True, True)
    variables = as_variables(initial)
    g = random_values((shape,), "float32", 9)
    _apply_dense(variables, tf.constant(g), HYPER)
    expected = rmsprop_step(*initial, g, **HYPER, compute_dtype=np.float32)
    assert_bitwise_equal(as_numpy(variables), expected)


def test_update_does_not_change_an_earlier_read():
    var = tf.Variable(np.ones(5, np.float32))
    ms = tf.Variable(np.zeros(5, np.float32))
    before = var.read_value()
    snapshot = before.numpy().copy()
    rmsprop_op.apply_rmsprop(var, ms, None, tf.ones(5), 0.1, 0.9, 0.0, 1e-7)
    np.testing.assert_array_equal(before.numpy(), snapshot)
    assert not np.array_equal(var.numpy(), snapshot)


def test_hyperparameters_as_tensors_and_variables():
    initial = initial_slots((5,), "float32", False, True)
    a, b = as_variables(initial), as_variables(initial)
    g = tf.constant(random_values((5,), "float32", 1))
    _apply_dense(a, g, HYPER)
    lr = tf.Variable(HYPER["lr"], dtype=tf.float32)
    tensors = dict(lr=lr, rho=tf.constant(0.9), momentum=tf.constant(0.5, tf.float64),
                   epsilon=tf.constant(1e-7, tf.float32))
    var, ms, _, mom = b
    rmsprop_op.apply_rmsprop(var, ms, mom, g, **tensors)
    # float32 rho 0.9 differs from Python's 0.9 only in 1 - rho, computed in double.
    for x, y in zip(as_numpy(a), as_numpy(b)):
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=1e-6)


def test_no_gradient_registered():
    var = tf.Variable([1.0, 2.0])
    ms = tf.Variable([0.0, 0.0])
    with tf.GradientTape() as tape:
        y = var * 2.0
        rmsprop_op.apply_rmsprop(var, ms, None, tf.ones(2), 0.1, 0.9, 0.0, 1e-7)
    assert tape.gradient(y, var) is not None

    @tf.function
    def step():
        with tf.GradientTape() as t:
            loss = tf.reduce_sum(var ** 2)
        g = t.gradient(loss, var)
        rmsprop_op.apply_rmsprop(var, ms, None, g, 0.1, 0.9, 0.0, 1e-7)
        return loss
    step()
    for op in tf.compat.v1.get_default_graph().get_operations():
        pass  # tracing above must not raise


def test_use_locking_gives_the_same_result():
    initial = initial_slots((100,), "float32", True, True)
    a, b = as_variables(initial), as_variables(initial)
    g = tf.constant(random_values((100,), "float32", 2))
    _apply_dense(a, g, HYPER, use_locking=False)
    _apply_dense(b, g, HYPER, use_locking=True)
    assert_bitwise_equal(as_numpy(a), as_numpy(b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered,with_mom", [(False, False), (True, True)])
def test_group_matches_single_ops(dtype, centered, with_mom):
    shapes = [(3,), (17, 5), (1,), (0,), (1000,), (2, 3, 4)]
    initial = [initial_slots(s, dtype, centered, with_mom, seed=10 * i) for i, s in enumerate(shapes)]
    grads = [tf.constant(random_values(s, dtype, 50 + i)) for i, s in enumerate(shapes)]
    singles = [as_variables(x) for x in initial]
    group = [as_variables(x) for x in initial]
    momentum = HYPER["momentum"] if with_mom else 0.0
    hyper = dict(HYPER, momentum=momentum)
    for v, g in zip(singles, grads):
        _apply_dense(v, g, hyper)
    apply_group(group, grads, hyper)
    for s, g in zip(singles, group):
        assert_bitwise_equal(as_numpy(g), as_numpy(s))


def test_gradient_of_mixed_precision_scalars():
    """Float16 variables see the same (double) learning rate as float32 ones."""
    var = tf.Variable(np.array([1.0], np.float16))
    ms = tf.Variable(np.array([0.0], np.float16))
    rmsprop_op.apply_rmsprop(var, ms, None, tf.constant([1.0], tf.float16), 1e-3, 0.9, 0.0, 1e-7)
    expected = np.float16(np.float32(1.0) - np.float32(1e-3) / np.sqrt(np.float32(0.1) + np.float32(1e-7)))
    assert var.numpy()[0] == expected


EPSILON_AFTER_SQRT_VARIANTS = list(itertools.product(DTYPES, [True, False], [True, False],
                                                     ["dense", "sparse", "group"]))


def _apply_epsilon_after_sqrt(ops, kind, variables, grad, indices, hyper):
    var, ms, mg, mom = variables
    args = dict(hyper, momentum=hyper["momentum"] if mom is not None else 0.0,
                epsilon_after_sqrt=True)
    if kind == "group":
        return ops.group_apply_rmsprop([var], None if mg is None else [mg], [ms],
                                       None if mom is None else [mom], [grad], **args)
    return ops.update(var, ms, grad, mg=mg, mom=mom, indices=indices, **args)


@pytest.mark.parametrize("dtype,with_mom,centered,kind", EPSILON_AFTER_SQRT_VARIANTS)
def test_epsilon_after_sqrt_matches_reference(dtype, with_mom, centered, kind):
    """lr*g / (sqrt(ms) + epsilon), tf_keras's formula, bit for bit; it
    differs from the default placement where ms is comparable to epsilon."""
    from rmsprop_op import plain_tf

    shape = (6, 5)
    initial = initial_slots(shape, dtype, centered, with_mom)
    # Tiny mean squares: where epsilon's placement shows.
    small = NUMPY_DTYPES[dtype](1e-2)
    initial = (initial[0], initial[1] * small * small,
               None if initial[2] is None else initial[2] * small, initial[3])
    hyper = dict(HYPER, epsilon=1e-3 if dtype in ("float16", "bfloat16") else 1e-5)
    momentum = hyper["momentum"] if with_mom else 0.0
    indices = np.array([4, 1, 4, 0], np.int64) if kind == "sparse" else None
    g = random_values(shape if indices is None else (len(indices), shape[1]), dtype, 7) * \
        NUMPY_DTYPES[dtype](0.01)
    step = sparse_rmsprop_step if kind == "sparse" else rmsprop_step
    extra = (indices,) if kind == "sparse" else ()
    args = (hyper["lr"], hyper["rho"], momentum, hyper["epsilon"],
            compute_dtype_of(NUMPY_DTYPES[dtype]))
    expected = step(*initial, g, *extra, *args, epsilon_after_sqrt=True)
    default_placement = step(*initial, g, *extra, *args)
    assert not np.array_equal(expected[0], default_placement[0])

    for ops in (rmsprop_op, plain_tf):
        variables = as_variables(initial)
        _apply_epsilon_after_sqrt(ops, kind, variables, tf.constant(g),
                                  None if indices is None else tf.constant(indices), hyper)
        if ops is rmsprop_op:
            assert_bitwise_equal(as_numpy(variables), expected)
        else:  # plain TF ops in eager mode round as the kernels do, up to float16 casts
            for a, e in zip(as_numpy(variables), expected):
                if e is not None:
                    np.testing.assert_allclose(a.astype(np.complex128), e.astype(np.complex128),
                                               rtol={"float16": 2e-3, "bfloat16": 2e-3, "float32": 1e-5,
                                                     "complex64": 1e-5}.get(dtype, 1e-6))


COMPLEX_VARIANTS = list(itertools.product(["complex64", "complex128"], MODES, ["dense", "sparse"],
                                          [False, True], [0.0, 0.5], ["in", "after"]))


def _tensorflow_complex_step(variables, grad, indices, hyper, centered, epsilon_after_sqrt):
    """TensorFlow's own complex update: the training ops (epsilon under the root),
    or tf_keras's formula in TensorFlow ops (epsilon after it)."""
    var, ms, mg, mom = variables
    c = var.dtype
    lr, rho, momentum, epsilon = (tf.constant(hyper[k], c) for k in ("lr", "rho", "momentum", "epsilon"))
    if not epsilon_after_sqrt:
        args = dict(var=var.handle, ms=ms.handle, mom=mom.handle, lr=lr, rho=rho,
                    momentum=momentum, epsilon=epsilon, grad=grad)
        if centered:
            args["mg"] = mg.handle
        if indices is None:
            op = tf.raw_ops.ResourceApplyCenteredRMSProp if centered else tf.raw_ops.ResourceApplyRMSProp
        else:
            args["indices"] = indices
            op = (tf.raw_ops.ResourceSparseApplyCenteredRMSProp if centered
                  else tf.raw_ops.ResourceSparseApplyRMSProp)
        op(**args)
        return
    rows = (lambda v: v.read_value()) if indices is None else (lambda v: tf.gather(v, indices))
    write = ((lambda v, x: v.assign(x)) if indices is None
             else (lambda v, x: v.scatter_update(tf.IndexedSlices(x, indices))))
    new_ms = rho * rows(ms) + (1 - rho) * tf.square(grad)
    denom = new_ms
    if centered:
        new_mg = rho * rows(mg) + (1 - rho) * grad
        write(mg, new_mg)
        denom = new_ms - tf.square(new_mg)
    step = lr * grad / (tf.sqrt(denom) + epsilon)
    new_mom = momentum * rows(mom) + step
    write(ms, new_ms)
    write(mom, new_mom)
    write(var, rows(var) - new_mom)


@pytest.mark.parametrize("dtype,mode,kind,centered,momentum,placement", COMPLEX_VARIANTS)
def test_complex_agrees_with_tensorflow(dtype, mode, kind, centered, momentum, placement):
    """Complex updates (g^2 = g*g, principal root, real epsilon) follow
    TensorFlow's over 20 steps within rtol 1e-5 (complex64) / 1e-12
    (complex128): TensorFlow's complex division and root are other algorithms
    than ours, correct to a few ulps each."""
    shape = (12, 5)
    initial = initial_slots(shape, dtype, centered, True)
    ours, theirs = as_variables(initial), as_variables(initial)
    hyper = dict(HYPER, momentum=momentum, epsilon=1e-3)
    after = placement == "after"
    indices = tf.constant([3, 11, 0, 7], tf.int64) if kind == "sparse" else None
    grad_shape = shape if indices is None else (4, shape[1])
    for step in range(20):
        g = tf.constant(random_values(grad_shape, dtype, 700 + step))
        run_in(mode, lambda: apply_update(ours, g, hyper_for(ours, hyper), indices,
                                          epsilon_after_sqrt=after))
        _tensorflow_complex_step(theirs, g, indices, hyper, centered, after)
    rtol = 1e-5 if dtype == "complex64" else 1e-12
    for a, b in zip(as_numpy(ours), as_numpy(theirs)):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)
