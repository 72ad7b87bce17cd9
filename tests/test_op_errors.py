"""Bad input: a clear InvalidArgumentError naming the input, and nothing changed."""
import re

import numpy as np
import pytest
import tensorflow as tf

import rmsprop_op
from rmsprop_op import _loader, plain_tf

HYPER = dict(lr=0.01, rho=0.9, momentum=0.5, epsilon=1e-7)


def _make(shape=(4, 3), dtype=np.float32, centered=True):
    rng = np.random.default_rng(0)
    values = {k: rng.standard_normal(shape).astype(dtype) for k in ("var", "ms", "mg", "mom")}
    # Keeps the dtype of 0-d values under NumPy 1's promotion rules too.
    values["ms"] = (np.abs(values["ms"]) + 1).astype(dtype)
    variables = {k: tf.Variable(v) for k, v in values.items()}
    return variables


def _snapshot(variables):
    return {k: v.numpy().copy() for k, v in variables.items()}


def _assert_unchanged(variables, snapshot):
    for k, v in variables.items():
        np.testing.assert_array_equal(np.atleast_1d(v.numpy()).view(np.uint8), np.atleast_1d(snapshot[k]).view(np.uint8),
                                      err_msg=f"{k} changed")


def _expect_error(variables, fn, *fragments):
    snapshot = _snapshot(variables)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn()
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    _assert_unchanged(variables, snapshot)


def dense(v, grad=None, **overrides):
    args = dict(HYPER, **overrides)
    grad = tf.ones(v["var"].shape, v["var"].dtype) if grad is None else grad
    return lambda: rmsprop_op.apply_centered_rmsprop(v["var"], v["mg"], v["ms"], v["mom"],
                                                     grad, **args)


def sparse(v, grad, indices, **overrides):
    args = dict(HYPER, **overrides)
    return lambda: rmsprop_op.sparse_apply_centered_rmsprop(v["var"], v["mg"], v["ms"], v["mom"],
                                                            grad, indices, **args)


@pytest.mark.parametrize("slot", ["ms", "mg", "mom"])
def test_slot_shape_mismatch(slot):
    v = _make()
    v[slot] = tf.Variable(np.zeros((4, 2), np.float32))
    _expect_error(v, dense(v), slot, "[4,2]", "[4,3]")


def test_grad_shape_mismatch():
    v = _make()
    _expect_error(v, dense(v, grad=tf.ones([3, 4])), "grad", "[3,4]")


@pytest.mark.parametrize("name", ["lr", "rho", "momentum", "epsilon"])
def test_non_scalar_hyperparameter(name):
    v = _make()
    _expect_error(v, dense(v, **{name: [0.1, 0.2]}), name, "scalar")


def test_grad_dtype_mismatch():
    v = _make()
    _expect_error(v, dense(v, grad=tf.ones([4, 3], tf.float64)), "dtype", "float")


def test_slot_dtype_mismatch():
    v = _make()
    v["ms"] = tf.Variable(np.ones((4, 3), np.float64))
    _expect_error(v, dense(v), "ms", "double")


def test_complex_variable_with_a_real_slot():
    v = _make(dtype=np.complex64)
    v["mom"] = tf.Variable(np.ones((4, 3), np.float32))
    _expect_error(v, dense(v), "mom", "float")


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_sparse_index_out_of_range(dtype):
    v = _make(dtype=dtype)
    grad = tf.ones([3, 3], tf.as_dtype(dtype))
    _expect_error(v, sparse(v, grad, tf.constant([0, 4, 1])), "indices[1]", "[0, 4)")
    _expect_error(v, dense(v, grad=tf.ones([4, 3], tf.complex128 if dtype == np.complex64
                                           else tf.complex64)), "dtype")


def test_momentum_without_slot():
    v = _make()
    snapshot = _snapshot(v)
    with pytest.raises(ValueError, match="mom is None"):
        rmsprop_op.apply_rmsprop(v["var"], v["ms"], None, tf.ones([4, 3]), **HYPER)
    # A tensor momentum is only known to the kernel, which rejects it too.
    with pytest.raises(tf.errors.InvalidArgumentError, match="no momentum slot"):
        rmsprop_op.apply_rmsprop(v["var"], v["ms"], None, tf.ones([4, 3]),
                                 **dict(HYPER, momentum=tf.constant(0.5)))
    _assert_unchanged(v, snapshot)


def test_same_variable_twice():
    v = _make()
    v["mom"] = v["ms"]
    _expect_error(v, dense(v), "same variable")


def test_uninitialized_variable():
    v = _make()
    handle = tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[4, 3], shared_name="never_assigned")
    snapshot = _snapshot(v)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ms is not an initialized"):
        _loader.ops.fused_resource_apply_rms_prop(
            var=v["var"].handle, ms=handle, mom=[], grad=tf.ones([4, 3]),
            lr=tf.constant(0.1, tf.float64), rho=tf.constant(0.9, tf.float64),
            momentum=tf.constant(0.0, tf.float64), epsilon=tf.constant(1e-7, tf.float64))
    _assert_unchanged(v, snapshot)


def test_not_a_variable():
    v = _make()
    with pytest.raises(TypeError, match="resource variable"):
        rmsprop_op.apply_rmsprop(tf.ones([4, 3]), v["ms"], None, tf.ones([4, 3]), 0.1, 0.9, 0.0, 1e-7)


def test_not_a_variable_in_a_group_is_named():
    a, b = _make(), _make()
    with pytest.raises(TypeError, match=r"mss\[1\] must be a resource variable"):
        rmsprop_op.group_apply_rmsprop([a["var"], b["var"]], None, [a["ms"], tf.ones([4, 3])],
                                       None, [tf.ones([4, 3])] * 2, 0.1, 0.9, 0.0, 1e-7)


@pytest.mark.parametrize("bad", [-1, 4, 2**31 - 1])
@pytest.mark.parametrize("index_dtype", [tf.int32, tf.int64])
def test_index_out_of_range(bad, index_dtype):
    v = _make()
    indices = tf.constant([0, 2, bad, 1], index_dtype)
    _expect_error(v, sparse(v, tf.ones([4, 3]), indices), "indices[2]", "[0, 4)")


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("bad", [-1, 4, 2**31 - 1])
@pytest.mark.parametrize("index_dtype", [tf.int32, tf.int64])
def test_plain_tf_index_out_of_range(bad, index_dtype, compiled):
    """The plain-TensorFlow path (GPU fallback) raises the op's error, before
    any write, where it once dropped such rows silently."""
    from rmsprop_op import plain_tf

    v = _make()
    indices = tf.constant([0, 2, bad, 1], index_dtype)

    def update():
        plain_tf.update(v["var"], v["ms"], tf.ones([4, 3]), mg=v["mg"], mom=v["mom"],
                        indices=indices, **HYPER)
    if compiled:
        _expect_error(v, tf.function(update), "out of range", "nothing was updated", "[2] [4]")
    else:
        _expect_error(v, update, "indices[2]", "[0, 4)")


def test_indices_not_a_vector():
    v = _make()
    _expect_error(v, sparse(v, tf.ones([2, 3]), tf.constant([[0], [1]])), "indices", "vector")


def test_grad_rows_do_not_match_indices():
    v = _make()
    _expect_error(v, sparse(v, tf.ones([3, 3]), tf.constant([0, 1])), "grad", "[3,3]", "2 indices")


def test_sparse_grad_row_shape_mismatch():
    v = _make()
    _expect_error(v, sparse(v, tf.ones([2, 5]), tf.constant([0, 1])), "grad", "[2,5]")


def test_sparse_scalar_variable():
    v = _make(shape=())
    _expect_error(v, sparse(v, tf.ones([1]), tf.constant([0])), "at least 1-D")


def test_shapes_checked_at_run_time_when_unknown_statically():
    """Under tf.distribute, IndexedSlices may arrive with unknown static shapes."""
    v = _make()

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.int32)])
    def step(grad, indices):
        sparse(v, grad, indices)()

    _expect_error(v, lambda: step(tf.ones([2, 5]), tf.constant([0, 1])), "grad")
    _expect_error(v, lambda: step(tf.ones([2, 3]), tf.constant([0, 9])), "indices[1]")

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
    def dense_step(grad):
        dense(v, grad=grad)()

    _expect_error(v, lambda: dense_step(tf.ones([4, 2])), "grad", "[4,2]")


def _group(a, b, grads, **overrides):
    return lambda: rmsprop_op.group_apply_rmsprop(
        [a["var"], b["var"]], [a["mg"], b["mg"]], [a["ms"], b["ms"]], [a["mom"], b["mom"]],
        grads, **dict(HYPER, **overrides))


# Inside a tf.function the shape function is the first to see a wrong shape;
# its error names the input, as the kernel's does eagerly.
STATIC_SHAPE_ERRORS = {
    "dense grad": (lambda v, w: dense(v, grad=tf.ones([3, 3])), "grad must have the shape of var"),
    "slot": (lambda v, w: dense(dict(v, ms=w["ms"])), "ms must have the shape of var"),
    "scalar lr": (lambda v, w: dense(v, lr=tf.constant([0.1, 0.2])), "lr must be a scalar"),
    "sparse rows": (lambda v, w: sparse(v, tf.ones([2, 3]), tf.constant([0, 1, 2])),
                    "grad must have one row per element of indices"),
    "sparse row shape": (lambda v, w: sparse(v, tf.ones([2, 5]), tf.constant([0, 1])),
                         "grad's rows must have the shape of var's rows"),
    "indices": (lambda v, w: sparse(v, tf.ones([2, 3]), tf.constant([[0, 1]])),
                "indices must be a vector"),
    "group grad": (lambda v, w: _group(v, w, [tf.ones([4, 3]), tf.ones([6])]),
                   "grad[1] must have the shape of var[1]"),
    "group scalar": (lambda v, w: _group(v, w, [tf.ones([4, 3]), tf.ones([5])],
                                         epsilon=tf.constant([1e-7])), "epsilon must be a scalar"),
}


@pytest.mark.parametrize("case", sorted(STATIC_SHAPE_ERRORS))
def test_static_shape_errors_at_trace_time_name_the_input(case):
    make_call, message = STATIC_SHAPE_ERRORS[case]
    v, w = _make(), _make(shape=(5,))

    @tf.function
    def step():
        make_call(v, w)()

    snapshot, snapshot_w = _snapshot(v), _snapshot(w)
    with pytest.raises(ValueError, match=re.escape(message)):
        step()
    _assert_unchanged(v, snapshot)
    _assert_unchanged(w, snapshot_w)


@pytest.mark.parametrize("name, value, error, message", [
    ("rho", 1.5, ValueError, "`rho` must be between 0.0 and 1.0, got rho=1.5"),
    ("rho", -0.1, ValueError, "`rho` must be between 0.0 and 1.0"),
    ("momentum", 2.0, ValueError, "`momentum` must be between 0.0 and 1.0"),
    ("epsilon", -1e-7, ValueError, "`epsilon` must be >= 0.0"),
    ("epsilon", float("nan"), ValueError, "`epsilon` must be >= 0.0"),
    ("lr", "x", ValueError, "`lr` must be a number, got the string 'x'"),
    ("rho", tf.constant("x"), TypeError, "`rho` must be a real number or a real tensor"),
    ("lr", tf.constant(True), TypeError, "`lr` must be a real number or a real tensor"),
])
def test_hyperparameters_checked_like_the_keras_optimizer(name, value, error, message):
    v = _make()
    for call in (dense(v, **{name: value}), sparse(v, tf.ones([1, 3]), [0], **{name: value}),
                 _group(v, _make(shape=(5,)), [tf.ones([4, 3]), tf.ones([5])], **{name: value})):
        snapshot = _snapshot(v)
        with pytest.raises(error, match=re.escape(message)):
            call()
        _assert_unchanged(v, snapshot)


@pytest.mark.parametrize("name, value", [("rho", 1.5), ("momentum", -0.5), ("epsilon", -1.0),
                                         ("lr", "x")])
def test_plain_tf_checks_hyperparameters_alike(name, value):
    v = _make()
    args = dict(HYPER, **{name: value})
    snapshot = _snapshot(v)
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        plain_tf.update(v["var"], v["ms"], tf.ones([4, 3]), mg=v["mg"], mom=v["mom"], **args)
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        plain_tf.group_apply_rmsprop([v["var"]], [v["mg"]], [v["ms"]], [v["mom"]],
                                     [tf.ones([4, 3])], **args)
    _assert_unchanged(v, snapshot)


def test_ema_momentum_checked():
    v, w = _make(), _make(shape=(5,))
    with pytest.raises(ValueError, match="`ema_momentum` must be between 0.0 and 1.0"):
        rmsprop_op.group_apply_rmsprop(
            [v["var"]], None, [v["ms"]], None, [tf.ones([4, 3])], 0.1, 0.9, 0.0, 1e-7,
            emas=[w["var"]], ema_momentum=1.5)


def test_group_errors():
    a, b = _make(), _make(shape=(5,))
    snapshot_a, snapshot_b = _snapshot(a), _snapshot(b)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"grad\[1\]"):
        rmsprop_op.group_apply_rmsprop(
            [a["var"], b["var"]], None, [a["ms"], b["ms"]], [a["mom"], b["mom"]],
            [tf.ones([4, 3]), tf.ones([6])], **HYPER)
    with pytest.raises(ValueError, match="mss has 1 entries"):
        rmsprop_op.group_apply_rmsprop([a["var"], b["var"]], None, [a["ms"]], None,
                                       [tf.ones([4, 3]), tf.ones([5])], 0.1, 0.9, 0.0, 1e-7)
    _assert_unchanged(a, snapshot_a)
    _assert_unchanged(b, snapshot_b)
