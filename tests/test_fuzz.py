"""Property-based fuzzing of every op against tests/reference.py.

Shapes (scalars, empty and 0-sized dims, N-D), dtypes (complex ones with both
parts drawn), hyperparameters (0, 1, subnormal, huge, infinite, NaN), values
(NaN, Inf, subnormal, huge) and index vectors (duplicates, unsorted,
negative, out of range, int32 / int64) are drawn at random. Valid input must
give the reference's result in the op's compute dtype bit for bit (any NaN
matches any NaN); invalid input an InvalidArgumentError with every variable
bit-for-bit unchanged. The reference models the processor's flush-to-zero
(tests/fuzz_support.py says how).

The number of examples per test comes from the hypothesis profile chosen in
tests/conftest.py (HYPOTHESIS_PROFILE=long for `make fuzz`).
"""
import math
import uuid

import numpy as np
import pytest
import tensorflow as tf

import rmsprop_op
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.bundle import apply_group, apply_update
from tests.fuzz_support import (DTYPES, HYPER_NAMES, assert_matches, assert_unchanged, draw_array,
                                draw_dense_shape, draw_hyper, draw_indices, draw_slot_values,
                                eager, examples, reference_dense, reference_sparse, run, snapshot)
from tests.reference import NUMPY_DTYPES


# --- Valid input: bit for bit the reference --------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.slow
@settings(max_examples=examples(0.5))
@given(data=st.data())
def test_dense_matches_reference(dtype, data):
    centered = data.draw(st.booleans(), label="centered")
    with_mom = data.draw(st.booleans(), label="with_mom")
    mode = data.draw(st.sampled_from(["eager", "function"]), label="mode")
    use_locking = data.draw(st.booleans(), label="use_locking")
    shape = draw_dense_shape(data)
    event(f"centered={centered} mom={with_mom}")
    values = draw_slot_values(data, shape, dtype, centered, with_mom)
    hyper = draw_hyper(data, with_mom)
    variables = values.variables()
    for step in range(data.draw(st.integers(1, 2), label="steps")):
        grad = draw_array(data, shape, dtype, data.draw(st.booleans(), label="wild grad"),
                          f"grad{step}")
        inputs = eager([grad, hyper])
        run(mode, lambda: apply_update(variables, *inputs, use_locking=use_locking))
        values = reference_dense(values, grad, hyper, dtype)
        assert_matches(variables, values)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.slow
@settings(max_examples=examples(0.5))
@given(data=st.data())
def test_sparse_matches_reference_or_rejects_bad_indices(dtype, data):
    centered = data.draw(st.booleans(), label="centered")
    with_mom = data.draw(st.booleans(), label="with_mom")
    mode = data.draw(st.sampled_from(["eager", "function"]), label="mode")
    use_locking = data.draw(st.booleans(), label="use_locking")
    index_dtype = data.draw(st.sampled_from([np.int32, np.int64]), label="index dtype")
    if data.draw(st.sampled_from([False] * 5 + [True]), label="many rows"):
        rows = data.draw(st.integers(100, 3000), label="rows")
        row_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=1, max_side=8), label="row")
    else:
        rows = data.draw(st.integers(0, 6), label="rows")
        row_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4),
                              label="row shape")
    shape = (rows,) + row_shape
    values = draw_slot_values(data, shape, dtype, centered, with_mom)
    hyper = draw_hyper(data, with_mom)
    valid = data.draw(st.sampled_from([True, False]), label="valid indices")
    indices = draw_indices(data, rows, index_dtype, valid)
    in_range = bool(np.all((indices >= 0) & (indices < rows)))
    note(f"indices={indices.tolist()}")
    event(f"{np.dtype(index_dtype).name} indices")
    event("out of range" if not in_range else "in range")
    grad = draw_array(data, (len(indices),) + row_shape, dtype,
                      data.draw(st.booleans(), label="wild grad"), "grad")
    variables = values.variables()
    inputs = eager([grad, hyper, indices])
    call = lambda: apply_update(variables, *inputs, use_locking=use_locking)  # noqa: E731
    if not in_range:
        saved = snapshot(variables.present())
        with pytest.raises(tf.errors.InvalidArgumentError, match=FAULT_MESSAGES["index range"]):
            call()
        assert_unchanged(saved)
        return
    run(mode, call)
    assert_matches(variables, reference_sparse(values, grad, indices, hyper, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.slow
@settings(max_examples=examples(0.5))
@given(data=st.data())
def test_group_matches_reference(dtype, data):
    centered = data.draw(st.booleans(), label="centered")
    with_mom = data.draw(st.booleans(), label="with_mom")
    mode = data.draw(st.sampled_from(["eager", "function"]), label="mode")
    use_locking = data.draw(st.booleans(), label="use_locking")
    n = data.draw(st.integers(1, 5), label="num vars")
    shapes = [draw_dense_shape(data, f"shape{i}") for i in range(n)]
    values = [draw_slot_values(data, s, dtype, centered, with_mom, prefix=f"{i}.")
              for i, s in enumerate(shapes)]
    grads = [draw_array(data, s, dtype, data.draw(st.booleans(), label=f"wild grad{i}"),
                        f"grad{i}") for i, s in enumerate(shapes)]
    hyper = draw_hyper(data, with_mom)
    members = [v.variables() for v in values]
    inputs = eager([grads, hyper])
    run(mode, lambda: apply_group(members, *inputs, use_locking=use_locking))
    for member, start, grad in zip(members, values, grads):
        assert_matches(member, reference_dense(start, grad, hyper, dtype))


# --- Invalid input: InvalidArgumentError, nothing changed ------------------

def _other_shape(data, shape, label):
    """A shape different from `shape` (rank or some dimension)."""
    change = data.draw(st.sampled_from(["grow", "rank+", "rank-"]), label=label)
    if change == "rank+" or (change in ("grow", "rank-") and not shape):
        return shape + (data.draw(st.integers(0, 3), label=f"{label} extra"),)
    if change == "rank-":
        return shape[1:]
    axis = data.draw(st.integers(0, len(shape) - 1), label=f"{label} axis")
    return shape[:axis] + (shape[axis] + data.draw(st.integers(1, 3)),) + shape[axis + 1:]


class _Uninitialized:
    """A handle to a variable that was never created."""

    def __init__(self, dtype, shape):
        self.handle = tf.raw_ops.VarHandleOp(dtype=tf.as_dtype(dtype), shape=shape,
                                             shared_name=f"fuzz_missing_{uuid.uuid4().hex}")


# Each fault and what the error must say, so that an example fails for the
# fault it was built with and not some other.
FAULT_MESSAGES = {
    "grad shape": r"grad(\[\d+\])? has shape",
    "grad dtype": r"has dtype \w+ but grad has dtype",
    "slot shape": r"a slot must have the shape of its variable",
    "slot dtype": r"has dtype \w+ but grad has dtype",
    "member dtype": r"has dtype \w+ but grad has dtype",
    "uninitialized": r"is not an initialized resource variable",
    "alias": r"are the same variable",
    "hyperparameter shape": r"must be a scalar",
    "momentum without slot": r"no momentum slot",
    "index range": r"indices\[\d+\] is out of range",
    "index rank": r"indices must be a vector",
    "scalar var": r"at least 1-D",
    "grad row shape": r"grad has shape",
}
DENSE_FAULTS = ["grad shape", "grad dtype", "slot shape", "slot dtype", "alias",
                "uninitialized", "hyperparameter shape", "momentum without slot"]
SPARSE_FAULTS = DENSE_FAULTS + ["index range", "index rank", "scalar var", "grad row shape"]
GROUP_FAULTS = DENSE_FAULTS + ["member dtype"]
FAULTS = ([("dense", f) for f in DENSE_FAULTS] + [("sparse", f) for f in SPARSE_FAULTS]
          + [("group", f) for f in GROUP_FAULTS])


@pytest.mark.parametrize("kind,fault", FAULTS)
@pytest.mark.slow
@settings(max_examples=examples(0.1))
@given(data=st.data())
def test_invalid_input_changes_nothing(kind, fault, data):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    other_dtype = data.draw(st.sampled_from([d for d in DTYPES if d != dtype]), label="other")
    centered = data.draw(st.booleans(), label="centered")
    with_mom = fault != "momentum without slot" and data.draw(st.booleans(), label="with_mom")
    use_locking = data.draw(st.booleans(), label="use_locking")
    hyper = draw_hyper(data, with_mom)
    if fault == "momentum without slot":
        # A tensor: a Python number is already refused in Python. Subnormal
        # doubles are left out: DAZ makes them compare equal to 0 in the kernel.
        hyper["momentum"] = tf.constant(data.draw(st.sampled_from(
            [0.5, -1.0, 1e-300, 1.0, math.inf, math.nan]), label="momentum"), tf.float64)
    if fault == "hyperparameter shape":
        name = data.draw(st.sampled_from(HYPER_NAMES), label="non-scalar")
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=3))
        hyper[name] = np.full(shape, 0.0 if name == "momentum" and not with_mom else 0.5)

    n = data.draw(st.integers(1, 3), label="num vars") if kind == "group" else 1
    if kind == "sparse":
        rows = data.draw(st.integers(0 if fault == "index range" else 1, 5), label="rows")
        row_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
        shapes = [() if fault == "scalar var" else (rows,) + row_shape]
    else:
        shapes = [draw_dense_shape(data, f"shape{i}") for i in range(n)]
    members = [draw_slot_values(data, s, dtype, centered, with_mom, f"{i}.").variables()
               for i, s in enumerate(shapes)]
    extra = []  # variables brought in by the fault, checked as well
    grads = [draw_array(data, s, dtype, True, f"grad{i}") for i, s in enumerate(shapes)]
    target = data.draw(st.integers(0, n - 1), label="faulty member")
    member, shape = members[target], shapes[target]
    slot = data.draw(st.sampled_from(member.names()[1:]), label="slot")
    indices = None
    if kind == "sparse":
        index_dtype = data.draw(st.sampled_from([np.int32, np.int64]), label="index dtype")
        if fault == "scalar var":
            indices = np.zeros(1, index_dtype)
            grads = [np.ones(1, NUMPY_DTYPES[dtype])]
        else:
            indices = draw_indices(data, shape[0], index_dtype, valid=fault != "index range")
            grads = [draw_array(data, (len(indices),) + shape[1:], dtype, True, "grad")]
            if fault == "index rank":
                indices = indices.reshape(data.draw(st.sampled_from(
                    [(1, -1), (-1, 1)] + ([()] if len(indices) == 1 else [])), label="rank"))
            if fault == "grad row shape":
                grads = [np.ones((len(indices),) + _other_shape(data, shape[1:], "row"),
                                 NUMPY_DTYPES[dtype])]

    if fault == "grad shape":
        if kind == "sparse":
            deltas = [1, 2] + ([-1] if len(indices) else [])
            new_shape = (len(indices) + data.draw(st.sampled_from(deltas)),) + shape[1:]
        else:
            new_shape = _other_shape(data, shape, "grad shape")
        grads[target] = np.ones(new_shape, NUMPY_DTYPES[dtype])
    elif fault == "grad dtype":
        with np.errstate(all="ignore"):  # .real: no warning for complex to real
            grads = [(g.real if np.dtype(NUMPY_DTYPES[other_dtype]).kind != "c" else g)
                     .astype(NUMPY_DTYPES[other_dtype]) for g in grads]
    elif fault == "slot shape":
        member[slot] = tf.Variable(np.zeros(_other_shape(data, shape, "slot shape"),
                                            NUMPY_DTYPES[dtype]))
        extra.append(member[slot])
    elif fault == "slot dtype":
        member[slot] = tf.Variable(np.zeros(shape, NUMPY_DTYPES[other_dtype]))
        extra.append(member[slot])
    elif fault == "member dtype":
        replaced = draw_slot_values(data, shape, other_dtype, centered, with_mom).variables()
        members[target] = replaced
        extra += member.present()
    elif fault == "uninitialized":
        name = data.draw(st.sampled_from(member.names()), label="uninitialized")
        extra.append(member[name])
        member[name] = _Uninitialized(NUMPY_DTYPES[dtype], shape)
    elif fault == "alias":
        everything = [(i, name) for i, m in enumerate(members) for name in m.names()]
        (i, a), (j, b) = data.draw(st.lists(st.sampled_from(everything), min_size=2, max_size=2,
                                            unique=True), label="aliased")
        extra.append(members[j][b])
        members[j][b] = members[i][a]

    note(f"shapes={shapes} grads={[g.shape for g in grads]} "
         f"indices={None if indices is None else indices.tolist()}")
    watched = [v for m in members for v in m.present() if isinstance(v, tf.Variable)] + extra
    saved = snapshot(watched)
    with pytest.raises(tf.errors.InvalidArgumentError, match=FAULT_MESSAGES[fault]):
        if kind == "dense":
            apply_update(members[0], grads[0], hyper, use_locking=use_locking)
        elif kind == "sparse":
            apply_update(members[0], grads[0], hyper, indices, use_locking=use_locking)
        else:
            apply_group(members, grads, hyper, use_locking=use_locking)
    assert_unchanged(saved)


def test_every_fault_has_a_message():
    assert {fault for _, fault in FAULTS} == set(FAULT_MESSAGES)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_a_subnormal_epsilon_after_the_root_reads_as_zero(dtype):
    """A case hypothesis found: centered, ms - mg^2 = 0 and epsilon -2^-149
    after the root. The kernels read the subnormal epsilon as zero (0 + -0 is
    +0, the step +inf); so must the reference."""
    np_dtype = NUMPY_DTYPES[dtype]
    hyper = dict(lr=1.0, rho=0.0, momentum=0.0, epsilon=-2.0 ** -149, epsilon_after_sqrt=True)
    var, mg, ms = (tf.Variable(np.zeros((), np_dtype)) for _ in range(3))
    # (A tensor: the Python number is refused before any op, as Keras refuses it.)
    rmsprop_op.update(var, ms, tf.constant(np.ones((), np_dtype)), mg=mg,
                      **dict(hyper, epsilon=tf.constant(hyper["epsilon"], tf.float64)))
    want = reference_dense([np.zeros((), np_dtype)] * 3 + [None], np.ones((), np_dtype), hyper,
                           dtype)
    assert var.numpy() == want[0] == -np.inf
