"""The fused ops with compact state (rmsprop_op.update with
compact_state.Int8State / Bfloat16State slots) against plain_tf.update with
the same state objects, the reference: bit for bit, every variant, dense and
sparse; errors with nothing changed; the constants the kernels compile in."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import rmsprop_op
from rmsprop_op import compact_state as cs
from rmsprop_op import plain_tf
from tests.helpers import assert_same_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = [[5000], [1000, 64], [300, 700], [3, 3, 64, 128], [5000, 1]]
HYPER = dict(lr=0.01, rho=0.9, epsilon=1e-7)


def _slot(kind, values, signed, noise_seed=None):
    if kind == "bfloat16":
        return cs.Bfloat16State(tf.Variable(tf.cast(values, tf.bfloat16)), noise_seed)
    codes, scales = cs.quantize(tf.constant(values), signed)
    return cs.Int8State(tf.Variable(codes), tf.Variable(scales))


def _make(kind, shape, centered, momentum, seed=1, zero_state=False):
    rng = np.random.default_rng(seed)

    def values(positive=False):
        if zero_state:
            return np.zeros(shape, np.float32)
        v = rng.standard_normal(shape).astype(np.float32)
        return np.abs(v) if positive else v
    var = tf.Variable(rng.standard_normal(shape).astype(np.float32))
    ms = _slot(kind, values(positive=True), signed=False)
    mg = _slot(kind, values(), signed=True) if centered else None
    mom = _slot(kind, values(), signed=True) if momentum else None
    return var, ms, mg, mom


def _state(var, *slots):
    return [var.numpy()] + [v.numpy() for s in slots if s is not None for v in s.variables]


def _refuse_plain_tf(*args, **kwargs):
    raise AssertionError("rmsprop_op.update fell back to plain_tf")


@pytest.fixture
def fused_only(monkeypatch):
    """Fails a test whose rmsprop_op.update falls back to plain TF."""
    monkeypatch.setattr(rmsprop_op.plain_tf, "update", _refuse_plain_tf)


def _run(update, kind, shape, centered, momentum, sparse, steps=3, grads=None, seed=1,
         zero_state=False, index_dtype=np.int64):
    var, ms, mg, mom = _make(kind, shape, centered, momentum, seed, zero_state)
    rng = np.random.default_rng(seed + 100)
    for step in range(steps):
        if sparse:
            # Duplicates included: more draws than a seventh of the rows.
            idx = rng.integers(0, shape[0], size=max(2, shape[0] // 7)).astype(index_dtype)
            g = rng.standard_normal([len(idx)] + shape[1:]).astype(np.float32)
        else:
            idx = None
            g = rng.standard_normal(shape).astype(np.float32)
        if grads is not None:
            g = grads(g, step)
        update(var, ms, tf.constant(g), mg=mg, mom=mom,
               indices=None if idx is None else tf.constant(idx),
               momentum=0.9 if momentum else 0.0, **HYPER)
    return _state(var, ms, mg, mom)


def _compare(*args, **kwargs):
    plain = plain_tf.update
    want = _run(plain, *args, **kwargs)
    got = _run(rmsprop_op.update, *args, **kwargs)
    assert_same_state(got, want)


VARIANTS = [(c, m) for c in (False, True) for m in (False, True)]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("centered,momentum", VARIANTS,
                         ids=["plain", "momentum", "centered", "centered-momentum"])
@pytest.mark.parametrize("kind", cs.FORMATS)
def test_every_variant_bit_for_bit(kind, centered, momentum, sparse):
    _compare(kind, [1000, 64], centered, momentum, sparse)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("kind", cs.FORMATS)
def test_shapes_bit_for_bit(kind, shape, sparse):
    _compare(kind, shape, True, True, sparse)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("centered,momentum", VARIANTS,
                         ids=["plain", "momentum", "centered", "centered-momentum"])
@pytest.mark.parametrize("kind", cs.FORMATS)
def test_every_variant_and_shape_bit_for_bit(kind, centered, momentum, sparse, shape):
    _compare(kind, shape, centered, momentum, sparse)


def test_the_fused_op_runs(fused_only):
    # Every compact slot of one kind, rounded to nearest, on the CPU: no plain TF.
    for kind in cs.FORMATS:
        for sparse in (False, True):
            _run(rmsprop_op.update, kind, [300, 700], True, True, sparse, steps=1)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_index_dtypes(index_dtype):
    _compare("int8", [5000, 1], False, True, True, index_dtype=index_dtype)


@pytest.mark.parametrize("kind", cs.FORMATS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_nan_and_inf_gradients(kind, sparse):
    def poison(g, step):
        g = g.copy()
        flat = g.reshape(-1)
        flat[3] = np.nan  # a block with NaN: scale NaN, codes 0
        flat[700] = np.inf
        flat[1500] = -np.inf
        if step == 1:
            flat[4000:4400] = np.nan
        return g
    _compare(kind, [300, 700], True, True, sparse, grads=poison)


@pytest.mark.parametrize("kind", cs.FORMATS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_zero_blocks(kind, sparse):
    # Zero state and zero gradients in whole blocks: scale 0, codes 0.
    def zero_rows(g, step):
        g = g.copy()
        g[: g.shape[0] // 2] = 0.0
        return g
    _compare(kind, [1000, 64], True, True, sparse, grads=zero_rows, zero_state=True)


def test_sparse_update_leaves_untouched_blocks_alone(fused_only):
    shape = [1000, 64]  # 4 rows per block
    var, ms, mg, mom = _make("int8", shape, True, True)
    before = _state(var, ms, mg, mom)
    rows = np.array([5, 5, 17, 998])  # blocks 1, 4 and 249
    rmsprop_op.update(var, ms, tf.ones([4, 64]), mg=mg, mom=mom, indices=tf.constant(rows),
                      momentum=0.9, **HYPER)
    after = _state(var, ms, mg, mom)
    touched_blocks = np.unique(rows // 4)
    untouched_rows = np.setdiff1d(np.arange(1000), np.concatenate([b * 4 + np.arange(4)
                                                                  for b in touched_blocks]))
    for i, (b, a) in enumerate(zip(before, after)):
        if b.shape == tuple(shape):
            np.testing.assert_array_equal(a[untouched_rows].view(np.uint8),
                                          b[untouched_rows].view(np.uint8), err_msg=str(i))
        else:  # scales
            keep = np.setdiff1d(np.arange(b.shape[0]), touched_blocks)
            np.testing.assert_array_equal(a[keep].view(np.uint32), b[keep].view(np.uint32))
    # var's untouched rows within touched blocks stay too; the slots' are re-encoded.
    np.testing.assert_array_equal(after[0][[4, 6, 7]], before[0][[4, 6, 7]])


# The value of code 1 at scale 1 (unsigned, signed): every code of a block
# encodes back to itself where code 1 reads as a normal float.
_CODE_ONE = (1.25 * 2.0 ** -32, 1.25 * 2.0 ** -16)
# Scales of blocks whose other rows keep their codes or not: ordinary ones,
# both ends of float32, either side of 0.8 * 2**-94 and 0.8 * 2**-110 (where
# code 1 reads as a normal float, unsigned and signed), zero, subnormal,
# infinite and NaN.
_KEEP_SCALES = [1.0, 3.7, 1e30, 2.0 ** 127 * 1.5, 2.0 ** -93, 2.0 ** -94 * 0.81,
                2.0 ** -94 * 0.8, 2.0 ** -94 * 0.79, 2.0 ** -95, 2.0 ** -110 * 0.81,
                2.0 ** -110 * 0.8, 2.0 ** -110 * 0.79, 0.0, 1e-40, np.inf, np.nan]


def _codes_round_trip(scales, signed):
    """compact_loops.h's CodesRoundTrip: a normal scale whose code 1 reads as
    a normal float."""
    tiny = np.finfo(np.float32).tiny
    with np.errstate(over="ignore", invalid="ignore"):
        one = np.float32(_CODE_ONE[signed]) * scales.astype(np.float32)
        return (scales >= tiny) & np.isfinite(scales) & (one >= tiny)


@pytest.mark.parametrize("rows,columns", [(384, 64), (85 * 96 - 7, 3), (191, 100)])
def test_sparse_blocks_keep_or_recode_the_rows_outside_the_batch(rows, columns, monkeypatch):
    """Blocks of several rows, one or two of them in the batch: the kernel
    encodes only those where the other rows' codes stay (all 0, or the
    block's scale unchanged), else the whole block (compact_loops.h). Either
    way its codes and scales are plain TF's, which re-encodes every touched
    block: every code byte (int8's -128 too), the scales above, gradients
    that keep the scale and gradients that raise it."""
    shape = [rows, columns]
    rows_per_block = 256 // columns
    blocks = -(-rows // rows_per_block)
    rng = np.random.default_rng(columns)
    ms_codes = rng.integers(0, 256, shape).astype(np.uint8)
    mom_codes = rng.integers(-128, 128, shape).astype(np.int8)
    ms_scales = np.array([_KEEP_SCALES[b % len(_KEEP_SCALES)] for b in range(blocks)],
                         np.float32)[:, None]
    mom_scales = np.where(np.arange(blocks) % 3 == 0, np.float32(1.0),
                          ms_scales[::-1, 0]).astype(np.float32)[:, None]
    indices, grads = [], []
    for b in range(blocks):
        first = b * rows_per_block
        block_rows = min(rows_per_block, rows - first)
        count = max(1, min(block_rows - 1, 1 + b % 2))  # other rows where the block has them
        picked = rng.choice(block_rows, size=count, replace=False) + first
        others = np.setdiff1d(np.arange(first, first + block_rows), picked)
        if b % 4 == 0:  # rows never updated before: codes 0
            ms_codes[others], mom_codes[others] = 0, 0
        elif b % 4 == 1 and len(others):  # the largest code outside the batch
            ms_codes[others[0], 0], mom_codes[others[-1], -1] = 255, -127
        if b % 5 != 0:
            mom_codes[others] = np.maximum(mom_codes[others], -127)
        scale = float(ms_scales[b, 0])
        size = np.sqrt(scale) if np.isfinite(scale) and scale > 0 else 1.0
        # Raises the scale, keeps it, or (no gradient) decays the block.
        size *= (10.0, 1e-3, 0.0)[b // len(_KEEP_SCALES) % 3]
        for row in np.concatenate([picked, picked[:b % 3 == 1]]):  # duplicates
            indices.append(row)
            grads.append(rng.standard_normal(columns).astype(np.float32) * np.float32(size))
    indices, grads = np.array(indices, np.int64), np.array(grads, np.float32)

    def run(update):
        var = tf.Variable(rng_var.standard_normal(shape).astype(np.float32))
        ms = cs.Int8State(tf.Variable(ms_codes), tf.Variable(ms_scales))
        mom = cs.Int8State(tf.Variable(mom_codes), tf.Variable(mom_scales))
        update(var, ms, tf.constant(grads), mom=mom, indices=tf.constant(indices),
               momentum=0.9, **HYPER)
        return _state(var, ms, None, mom)

    rng_var = np.random.default_rng(0)
    want = run(plain_tf.update)
    rng_var = np.random.default_rng(0)
    monkeypatch.setattr(rmsprop_op.plain_tf, "update", _refuse_plain_tf)
    got = run(rmsprop_op.update)
    assert_same_state(got, want)
    # The input reaches every way of a block: its other rows' codes 0; their
    # codes kept at an unchanged scale (one that round trips, no byte -128),
    # near the least such scale too; encoded again at a changed one.
    for signed, codes, old, new in ((False, ms_codes, ms_scales, want[2]),
                                    (True, mom_codes, mom_scales, want[4])):
        others = [np.delete(codes[b * rows_per_block:(b + 1) * rows_per_block],
                            np.unique(indices[indices // rows_per_block == b]) - b * rows_per_block,
                            axis=0) for b in range(blocks)]
        others_zero = np.array([not np.any(o) for o in others])
        no_minus_128 = np.array([not np.any(o.view(np.uint8) == 0x80) for o in others])
        scale_kept = old.view(np.uint32)[:, 0] == new.view(np.uint32)[:, 0]
        codes_kept = ~others_zero & no_minus_128 & scale_kept & _codes_round_trip(old[:, 0], signed)
        near_least = (old[:, 0] > 0) & (old[:, 0] < 2.0 ** (-93 if not signed else -109))
        assert np.count_nonzero(others_zero) >= 5
        assert np.count_nonzero(codes_kept) >= 5
        assert np.count_nonzero(codes_kept & near_least) >= 1
        assert np.count_nonzero(~others_zero & ~scale_kept) >= 5


def test_in_a_tf_function():
    var, ms, mg, mom = _make("int8", [300, 700], False, True)
    ref = _make("int8", [300, 700], False, True)
    g = tf.constant(np.random.default_rng(3).standard_normal([300, 700]).astype(np.float32))

    @tf.function
    def step():
        rmsprop_op.update(var, ms, g, mom=mom, momentum=0.9, **HYPER)
    step()
    step()
    for _ in range(2):
        plain_tf.update(ref[0], ref[1], g, mom=ref[3], momentum=0.9, **HYPER)
    assert_same_state(_state(var, ms, mom), _state(ref[0], ref[1], ref[3]))


def test_stochastic_rounding_and_mixed_slots_use_plain_tf(monkeypatch):
    calls = []
    real = plain_tf.update
    monkeypatch.setattr(rmsprop_op.plain_tf, "update",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    var, ms, _, _ = _make("bfloat16", [100, 50], False, False)
    noisy = cs.Bfloat16State(ms.variable, noise_seed=lambda: tf.constant([1, 2]))
    rmsprop_op.update(var, noisy, tf.ones([100, 50]), **HYPER)
    # A compact ms beside a float32 mom.
    rmsprop_op.update(var, ms, tf.ones([100, 50]), mom=tf.Variable(tf.zeros([100, 50])),
                      momentum=0.5, **HYPER)
    assert len(calls) == 2


def _unchanged(fn, *variables):
    before = [v.numpy() for v in variables]
    fn()
    for b, v in zip(before, variables):
        np.testing.assert_array_equal(v.numpy(), b)


def test_bad_scales_shape():
    var, ms, _, mom = _make("int8", [1000, 64], False, True)
    bad = cs.Int8State(ms.codes, tf.Variable(tf.zeros([251, 1])))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="ms scales"):
        _unchanged(lambda: rmsprop_op.update(var, bad, tf.ones([1000, 64]), mom=mom, momentum=0.9,
                                             **HYPER), var, ms.codes, mom.codes, mom.scales)


def test_bad_codes_dtype():
    var, ms, _, mom = _make("int8", [1000, 64], False, True)
    bad = cs.Int8State(tf.Variable(tf.zeros([1000, 64], tf.int8)), ms.scales)
    bad.signed = False
    with pytest.raises(tf.errors.InvalidArgumentError, match="ms codes has dtype int8 but must "
                                                             "be uint8"):
        _unchanged(lambda: rmsprop_op.update(var, bad, tf.ones([1000, 64]), mom=mom, momentum=0.9,
                                             **HYPER), var, ms.scales, mom.codes, mom.scales)


def test_bad_codes_shape():
    var, ms, _, _ = _make("bfloat16", [1000, 64], False, False)
    bad = cs.Bfloat16State(tf.Variable(tf.zeros([1000, 63], tf.bfloat16)))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="ms"):
        _unchanged(lambda: rmsprop_op.update(var, bad, tf.ones([1000, 64]), **HYPER), var)


@pytest.mark.parametrize("kind", cs.FORMATS)
def test_bad_index(kind):
    var, ms, mg, mom = _make(kind, [1000, 64], True, True)
    state = [v for s in (ms, mg, mom) for v in s.variables]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"indices\[2\] is out of range.*nothing was updated"):
        _unchanged(lambda: rmsprop_op.update(var, ms, tf.ones([3, 64]), mg=mg, mom=mom,
                                             indices=tf.constant([0, 999, 1000]), momentum=0.9,
                                             **HYPER), var, *state)


def test_momentum_without_slot():
    var, ms, _, _ = _make("int8", [100, 50], False, False)
    with pytest.raises(ValueError, match="mom is None"):
        rmsprop_op.update(var, ms, tf.ones([100, 50]), momentum=0.9, **HYPER)


def test_constants_header_is_generated_from_compact_state():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "compact_tables.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scale", [2.0 ** -120, 2.0 ** -126 * 1.5, 2.0 ** 126, 3e38])
@pytest.mark.parametrize("sparse", [False, True])
def test_tiny_and_huge_blocks_with_zeros_match_plain_tf(scale, sparse):
    """Blocks whose scale is near either end of float32, holding zeros and
    values below the normal floats: the fused op's codes are plain TF's."""
    shape = [64, 256]
    rng = np.random.default_rng(7)

    def values(positive):
        v = (rng.standard_normal(shape) * np.float32(scale) / 8).astype(np.float32)
        v[:, ::3] = 0
        v[:, 1::7] = np.float32(2.0 ** -130)
        v[:, 0] = np.float32(scale)
        return np.abs(v) if positive else v
    start = values(True), values(False), values(False)
    results = []
    for update in (rmsprop_op.update, plain_tf.update):
        var = tf.Variable(np.zeros(shape, np.float32))
        ms = _slot("int8", start[0], False)
        mg, mom = _slot("int8", start[1], True), _slot("int8", start[2], True)
        if sparse:
            grad, indices = tf.zeros([4] + shape[1:]), tf.constant([0, 5, 9, 63])
        else:
            grad, indices = tf.zeros(shape), None
        update(var, ms, grad, mg=mg, mom=mom, indices=indices, lr=0.01, rho=0.9, momentum=0.9,
               epsilon=1e-7)
        results.append(_state(var, ms, mg, mom))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
