"""Property-based fuzzing of the updates with compact state: the fused ops
(rmsprop_op.update with compact_state.Int8State / Bfloat16State slots)
against plain_tf.update on the same state, the reference.

Drawn: the format and variant, shapes (1-D to 3-D, rows of 1 to 700
elements, empty ones), the state as stored (every code byte, -128
included; scales 0, negative, subnormal, infinite or NaN, as a corrupt or
foreign checkpoint could hold them; bfloat16 NaN and Inf), values and
hyperparameters (tests/fuzz_support.py's edge values) and index vectors
(duplicates, unsorted, out of range). Valid input must give the reference's
bits (any NaN matches any NaN; in a sparse update, where plain_tf's sum
turns a lone -0.0 gradient row into +0.0, either zero matches the other);
an out-of-range index an
InvalidArgumentError with every variable bit for bit unchanged.
"""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rmsprop_op
from rmsprop_op import compact_state as cs
from rmsprop_op import plain_tf
from tests.fuzz_support import draw_array, draw_hyper, draw_indices, eager, examples
from tests.helpers import assert_same_state

_EDGE_SCALES = [0.0, -0.0, -1.0, 1e-45, 1e-40, 1.1754944e-38, 1e-20, 1e20, 3.4028235e38,
                np.inf, -np.inf, np.nan]


def _draw_shape(data):
    kind = data.draw(st.sampled_from(["1-D", "2-D", "3-D", "large", "empty"]), label="shape kind")
    if kind == "1-D":
        return [data.draw(st.integers(1, 1500), label="rows")]
    if kind == "2-D":
        return [data.draw(st.integers(1, 40), label="rows"),
                data.draw(st.integers(1, 700), label="columns")]
    if kind == "3-D":
        return [data.draw(st.integers(1, 20), label="rows"),
                data.draw(st.integers(1, 9), label="dim 1"),
                data.draw(st.integers(1, 40), label="dim 2")]
    if kind == "large":  # split over the thread pool
        return [data.draw(st.integers(2000, 6000), label="rows"), 64]
    return data.draw(st.sampled_from([[0], [0, 64], [5, 0]]), label="shape")


def _draw_scales(data, shape, label):
    tame = st.floats(2.0**-20, 10.0, width=32)
    wild = data.draw(st.booleans(), label=f"{label} wild")
    elements = st.one_of(tame, st.sampled_from(_EDGE_SCALES)) if wild else tame
    return data.draw(hnp.arrays(np.float32, cs.scales_shape(shape), elements=elements),
                     label=label)


def _draw_slot(data, kind, shape, signed, label):
    """Two copies of one drawn slot's stored state: (for the fused op, for
    the reference)."""
    if kind == "bfloat16":
        values = draw_array(data, shape, "float32", data.draw(st.booleans(), label=f"{label} wild"),
                            label, nonnegative=not signed)
        stored = tf.cast(tf.constant(values), tf.bfloat16)
        return tuple(cs.Bfloat16State(tf.Variable(stored)) for _ in range(2))
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label} codes seed")
    codes = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    if signed:
        codes = codes.view(np.int8)
    scales = _draw_scales(data, shape, f"{label} scales")
    return tuple(cs.Int8State(tf.Variable(codes), tf.Variable(scales)) for _ in range(2))


def _values(var, slots):
    return [var.numpy()] + [v.numpy() for s in slots if s is not None for v in s.variables]


@pytest.mark.parametrize("kind", cs.FORMATS)
@pytest.mark.slow
@settings(max_examples=examples(0.5))
@given(data=st.data())
def test_fused_compact_update_matches_plain_tf(kind, data):
    centered = data.draw(st.booleans(), label="centered")
    with_mom = data.draw(st.booleans(), label="with_mom")
    sparse = data.draw(st.booleans(), label="sparse")
    shape = _draw_shape(data)
    event(f"{kind} centered={centered} mom={with_mom} sparse={sparse}")
    var0 = draw_array(data, shape, "float32", data.draw(st.booleans(), label="wild var"), "var")
    ms = _draw_slot(data, kind, shape, False, "ms")
    mg = _draw_slot(data, kind, shape, True, "mg") if centered else (None, None)
    mom = _draw_slot(data, kind, shape, True, "mom") if with_mom else (None, None)
    hyper = draw_hyper(data, with_mom)
    indices = None
    grad_shape = shape
    if sparse:
        index_dtype = data.draw(st.sampled_from([np.int32, np.int64]), label="index dtype")
        valid = data.draw(st.sampled_from([True] * 4 + [False]), label="valid indices")
        indices = draw_indices(data, shape[0], index_dtype, valid)
        grad_shape = [len(indices)] + shape[1:]
    grad = draw_array(data, grad_shape, "float32", data.draw(st.booleans(), label="wild grad"),
                      "grad")
    inputs = eager(dict(grad=grad, **{k: v for k, v in hyper.items()}))
    if indices is not None:
        inputs["indices"] = tf.constant(indices)
    variables = [tf.Variable(var0), tf.Variable(var0)]
    fused_slots = [ms[0], mg[0], mom[0]]
    reference_slots = [ms[1], mg[1], mom[1]]
    before = _values(variables[0], fused_slots)

    def apply(update, var, slots):
        return update(var, slots[0], mg=slots[1], mom=slots[2], **inputs)

    in_range = indices is None or bool(np.all((indices >= 0) & (indices < shape[0])))
    if not in_range:
        with pytest.raises(tf.errors.InvalidArgumentError):
            apply(rmsprop_op.update, variables[0], fused_slots)
        assert_same_state(_values(variables[0], fused_slots), before)
        return
    apply(plain_tf.update, variables[1], reference_slots)
    apply(rmsprop_op.update, variables[0], fused_slots)
    note(f"shape {shape}")
    # Sparse: plain_tf sums every row's gradients, which makes a lone -0.0
    # row +0.0; the kernels take a lone row as it is (as the float32 ops do).
    assert_same_state(_values(variables[0], fused_slots), _values(variables[1], reference_slots),
                 any_zero=sparse)
