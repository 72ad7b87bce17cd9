"""Compact optimizer state (rmsprop_op.compact_state and RMSprop(state_dtype=...)):
the formats against the NumPy reference of tests/reference.py, the update
with compact slots bit for bit against reference, and the optimizer's slots,
configuration, saving and memory."""
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import rmsprop_op
from rmsprop_op import compact_state, plain_tf
from tests import reference
from tests.helpers import compact_slot, compact_values, consistent_slots

SHAPES = [(5000,), (1000, 64), (300, 700), (3, 3, 64, 128), (5000, 1), (4099, 3)]
HYPER = dict(lr=0.01, rho=0.9, epsilon=1e-7)


def _values(shape, seed, signed=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) * np.exp(
        rng.standard_normal(shape) * 2).astype(np.float32)
    return x if signed else np.square(x)


# The format.

@pytest.mark.parametrize("signed", [True, False])
def test_codes_read_as_the_documented_floats(signed):
    top = 127 if signed else 255
    codes = np.arange(-127 if signed else 0, top + 1)
    block = np.resize(codes, 256).astype(np.int8 if signed else np.uint8)
    # One block per scale: the top code reads as the scale, 8 codes a binade.
    for scale in (1.0, 1.99, 0.75, 3e-30, 3e38):
        s = np.float32(scale)
        values = compact_state.dequantize(tf.constant(np.resize(block, 4096)),
                                          tf.fill([16, 1], s), signed).numpy()
        read = dict(zip(block[:len(codes)].tolist(), values[:len(codes)].tolist()))
        f32 = lambda x: float(np.float32(x))  # noqa: E731
        assert read[0] == 0 and read[top] == f32(s)
        assert read[top - 8] == f32(s * np.float32(0.5))
        assert read[top - 7] == f32(s * np.float32(0.5625))
        assert read[top - 1] == f32(s * np.float32(0.9375))
        if signed:
            assert all(read[-c] == -read[c] for c in range(1, 128))
        np.testing.assert_array_equal(values[:len(codes)], reference.compact_dequantize(
            block[:len(codes)][:, None], np.float32([[scale]]), signed).ravel())
        positive = values[:len(codes)][codes > 0].astype(np.float64)
        assert np.all(np.diff(positive[positive > 0]) > 0)  # (a tiny scale's low codes read 0)
        assert np.all(np.diff(positive) >= 0)
    # Scale 1: code 1 is 1.25 * 2**-32 (unsigned: index 762) or 1.25 * 2**-16 (signed: 890).
    one = compact_state.dequantize(tf.constant(np.ones(4096, np.int8 if signed else np.uint8)),
                                   tf.ones([16, 1]), signed).numpy()[0]
    assert one == 1.25 * (2.0 ** -16 if signed else 2.0 ** -32)


def test_a_block_scaled_as_a_whole_keeps_its_codes():
    # A decay multiplies every value of a block alike: the codes stay, the
    # values follow the scale (no value sticks on a code, as it would on an
    # absolute grid).
    x = _values((4096,), 5)
    codes, scales = compact_state.quantize(tf.constant(x), signed=True)
    back = compact_state.dequantize(codes, scales, True).numpy()
    for rho in (0.99, 0.9, 0.5):
        decayed = (back * np.float32(rho)).astype(np.float32)
        again, again_scales = compact_state.quantize(tf.constant(decayed), signed=True)
        assert np.mean(again.numpy() == codes.numpy()) > 0.999
        np.testing.assert_array_equal(again_scales.numpy(),
                                      (scales.numpy() * np.float32(rho)).astype(np.float32))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("signed", [True, False])
def test_quantize_is_the_reference_and_round_trips(shape, signed):
    x = _values(shape, 1, signed)
    x.reshape(-1)[:300] = 0  # a block (or more) of zeros
    codes, scales = compact_state.quantize(tf.constant(x), signed)
    want_codes, want_scales = reference.compact_quantize(x, signed)
    np.testing.assert_array_equal(codes.numpy(), want_codes)
    np.testing.assert_array_equal(scales.numpy(), want_scales)
    assert codes.dtype == (tf.int8 if signed else tf.uint8)
    assert scales.shape == compact_state.scales_shape(shape)
    back = compact_state.dequantize(codes, scales, signed)
    np.testing.assert_array_equal(back.numpy(), reference.compact_dequantize(want_codes, want_scales, signed))
    again = compact_state.quantize(back, signed)
    np.testing.assert_array_equal(again[0].numpy(), want_codes)
    np.testing.assert_array_equal(again[1].numpy(), want_scales)


@pytest.mark.parametrize("shape", [(5000,), (300, 700), (1000, 64)])
def test_scales_are_exactly_each_blocks_largest_magnitude(shape):
    x = _values(shape, 2)
    _, scales = compact_state.quantize(tf.constant(x), True)
    view = x.reshape(shape[0], -1)
    for rb, cb, rs, cs in reference.compact_blocks(shape):
        assert scales.numpy()[rb, cb] == np.abs(view[rs, cs]).max()


def test_blocks_lie_within_rows_and_hold_up_to_256_elements():
    assert compact_state.block_layout((1000, 64)) == (1000, 64, 4, 64)
    assert compact_state.block_layout((300, 700)) == (300, 700, 1, 256)
    assert compact_state.block_layout((5000,)) == (5000, 1, 256, 1)
    assert compact_state.scales_shape((1000, 64)) == [250, 1]
    assert compact_state.scales_shape((300, 700)) == [300, 3]
    assert compact_state.scales_shape((100, 100)) == [50, 1]


def test_a_positive_mean_square_never_reads_back_as_zero():
    x = np.full((4096,), 1e-30, np.float32)
    x[0] = 1.0  # every block's other values are far below its lowest code
    x[256] = 1e30
    codes, scales = compact_state.quantize(tf.constant(x), signed=False)
    assert codes.numpy().min() == 1
    assert np.all(compact_state.dequantize(codes, scales, False).numpy() > 0)


@pytest.mark.parametrize("signed", [True, False])
def test_the_code_is_the_nearest_and_codes_grow_with_the_value(signed):
    # Magnitudes over every binade the codes reach, scale 1 (the block holds 1).
    rng = np.random.default_rng(3)
    x = (2.0 ** rng.uniform(-40, 0, 4096)).astype(np.float32)
    if signed:
        x *= rng.choice([-1, 1], x.shape).astype(np.float32)
    x[::256] = 1
    codes, scales = compact_state.quantize(tf.constant(x), signed)
    assert np.all(scales.numpy() == 1)
    back = compact_state.dequantize(codes, scales, signed).numpy()
    every = np.arange(128 if signed else 256)
    entries = compact_state.dequantize(tf.constant(np.resize(every, 4096).astype(
        np.int8 if signed else np.uint8)), tf.ones([16, 1]), signed).numpy()[:len(every)]
    # (A positive mean square's nearest non-zero entry: it never codes 0.)
    candidates = entries if signed else entries[1:]
    best = np.abs(candidates[None, :].astype(np.float64) - np.abs(x)[:, None]).min(axis=1)
    chosen = np.abs(np.abs(back).astype(np.float64) - np.abs(x))
    np.testing.assert_array_equal(chosen, best)
    assert np.all(np.sign(back) == np.sign(x) * (back != 0))
    # A tie (a value halfway between two entries) goes away from zero.
    halfway = np.full(4096, 0.53125, np.float32)  # between 0.5 and 0.5625
    halfway[::256] = 1
    codes, scales = compact_state.quantize(tf.constant(halfway), signed)
    assert compact_state.dequantize(codes, scales, signed).numpy()[1] == 0.5625
    # Within a block, codes never decrease as the value grows.
    sweep = (2.0 ** np.linspace(-40, 0, 4096)).astype(np.float32)
    codes, _ = compact_state.quantize(tf.constant(sweep), signed)
    assert np.all(np.diff(codes.numpy().astype(int).reshape(-1, 256), axis=1) >= 0)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("scale", [2.0 ** -120, 2.0 ** -126, 2.0 ** -100, 2.0 ** 126, 3e38])
def test_zeros_and_subnormals_code_zero_at_any_scale(signed, scale):
    # A magnitude below the normal floats is 0 whatever the block's scale
    # (by bits alone it would read as a power of two near a tiny scale).
    x = np.zeros(4096, np.float32)
    x[::256] = scale
    x[1::256] = -0.0
    x[2::256] = np.float32(2.0 ** -127)
    x[3::256] = np.float32(2.0 ** -140)
    if signed:
        x[4::256] = -np.float32(2.0 ** -127)
    codes, scales = compact_state.quantize(tf.constant(x), signed)
    want_codes, want_scales = reference.compact_quantize(x, signed)
    np.testing.assert_array_equal(codes.numpy(), want_codes)
    np.testing.assert_array_equal(scales.numpy(), want_scales)
    c = codes.numpy().astype(int).reshape(-1, 256)
    assert np.all(c[:, 0] == (127 if signed else 255))
    # Zeros code 0; a positive subnormal mean square codes 1 (never 0).
    assert np.all(c[:, 1] == 0) and np.all(c[:, 5:] == 0)
    assert np.all(c[:, 2:4] == (0 if signed else 1))


def test_non_finite_blocks_read_back_as_nan():
    x = np.ones((1024,), np.float32)
    x[3], x[300] = np.nan, np.inf
    codes, scales = compact_state.quantize(tf.constant(x), True)
    back = compact_state.dequantize(codes, scales, True).numpy()
    assert np.all(np.isnan(back[:512])) and np.all(back[512:] == 1)
    want = reference.compact_quantize(x, True)
    np.testing.assert_array_equal(codes.numpy(), want[0])
    np.testing.assert_array_equal(scales.numpy(), want[1])


def test_bfloat16_rounds_to_nearest_or_stochastically_without_bias():
    x = np.random.default_rng(4).standard_normal(4096).astype(np.float32)
    np.testing.assert_array_equal(compact_state.round_to_bfloat16(tf.constant(x)).numpy(),
                                  x.astype(ml_dtypes.bfloat16))
    rounds = np.array([compact_state.round_to_bfloat16(
        tf.constant(x), tf.random.stateless_uniform([4096], [1, i], 0, 1 << 16, tf.int32))
        .numpy().astype(np.float32) for i in range(200)])
    # Always one of the two bfloat16 neighbours of x.
    below = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    above = (x.view(np.uint32) & np.uint32(0xFFFF0000)) + np.uint32(0x10000)
    assert np.all((rounds == below) | (rounds == above.view(np.float32)))
    # Unbiased: averaged over 200 roundings the error is a small part of
    # rounding to nearest's.
    nearest_error = np.abs(x.astype(ml_dtypes.bfloat16).astype(np.float32) - x).mean()
    assert np.abs(rounds.mean(axis=0) - x).mean() < 0.2 * nearest_error


# The update with compact slots, against the NumPy reference.

_state = compact_slot
_read_reference = compact_values


def _store_reference(kind, values, old, touched_rows=None):
    """What the slot holds after storing `values`: bfloat16, or (codes, scales)
    with the blocks of untouched rows as they were."""
    if kind == "bfloat16":
        new = values.astype(ml_dtypes.bfloat16)
        if touched_rows is not None:  # untouched rows keep their bits
            new[~touched_rows] = old.variable.numpy()[~touched_rows]
        return new
    signed = old.signed
    codes, scales = reference.compact_quantize(values, signed)
    if touched_rows is not None:
        old_codes, old_scales = old.codes.numpy(), old.scales.numpy()
        view_codes = codes.reshape(values.shape[0], -1)
        for rb, cb, rs, cs in reference.compact_blocks(values.shape):
            if not touched_rows[rs].any():
                view_codes[rs, cs] = old_codes.reshape(values.shape[0], -1)[rs, cs]
                scales[rb, cb] = old_scales[rb, cb]
    return codes, scales


def _assert_holds(kind, state, want):
    if kind == "bfloat16":
        np.testing.assert_array_equal(state.variable.numpy().view(np.uint16), want.view(np.uint16))
    else:
        np.testing.assert_array_equal(state.codes.numpy(), want[0])
        np.testing.assert_array_equal(state.scales.numpy(), want[1])


# Independent random slots give some elements a negative variance (an
# infinite step) and NaN: those must match too.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", [(1000, 64), (300, 700)])  # (1-D: test_compact_state_ops.py)
def test_update_with_compact_slots_is_the_reference(kind, centered, momentum, sparse, shape):
    rng = np.random.default_rng(5)
    var = rng.standard_normal(shape).astype(np.float32)
    slots = {"ms": _state(kind, _values(shape, 6, signed=False) * 1e-3, False)}
    if centered:
        slots["mg"] = _state(kind, _values(shape, 7) * 1e-2, True)
    if momentum:
        slots["mom"] = _state(kind, _values(shape, 8) * 1e-2, True)
    v = tf.Variable(var)
    for step in range(2):
        if sparse:
            indices = rng.integers(0, shape[0], 40)
            indices[:3] = indices[0]  # duplicates
            grad = rng.standard_normal((40,) + shape[1:]).astype(np.float32)
        else:
            indices, grad = None, rng.standard_normal(shape).astype(np.float32)
        old = consistent_slots({k: _read_reference(kind, s) for k, s in slots.items()})
        args = (v.numpy(), old["ms"], old.get("mg"), old.get("mom"))
        if sparse:
            new = reference.sparse_rmsprop_step(*args, grad, indices, momentum=momentum,
                                                compute_dtype=np.float32, **HYPER)
            touched = np.zeros(shape[0], bool)
            touched[indices] = True
        else:
            new = reference.rmsprop_step(*args, grad, momentum=momentum, compute_dtype=np.float32,
                                         **HYPER)
            touched = None
        want = {k: _store_reference(kind, x, slots[k], touched)
                for k, x in zip(("ms", "mg", "mom"), new[1:]) if k in slots}
        plain_tf.update(v, slots["ms"], tf.constant(grad), mg=slots.get("mg"), mom=slots.get("mom"),
                        indices=None if indices is None else tf.constant(indices),
                        momentum=momentum, **HYPER)
        np.testing.assert_array_equal(v.numpy(), new[0], err_msg=f"step {step}")
        for k, s in slots.items():
            _assert_holds(kind, s, want[k])


def test_a_sparse_update_leaves_the_blocks_of_other_rows_untouched():
    shape = (1000, 64)
    ms = _state("int8", _values(shape, 9, signed=False), False)
    codes, scales = ms.codes.numpy(), ms.scales.numpy()
    v = tf.Variable(np.zeros(shape, np.float32))
    plain_tf.update(v, ms, tf.ones((2, 64)), indices=tf.constant([5, 900]), **HYPER)
    changed_blocks = np.nonzero(np.any(ms.scales.numpy() != scales, axis=1))[0]
    assert set(changed_blocks) <= {5 // 4, 900 // 4}
    keep = np.ones(shape[0], bool)
    keep[4:8] = keep[900:904] = False
    np.testing.assert_array_equal(ms.codes.numpy()[keep], codes[keep])


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
def test_trajectory_stays_close_to_full_precision_state(kind):
    """500 noisy steps toward a target: the variable with compact state
    follows the one with float32 state to a small part of the distance it moved."""
    shape = (64, 128)
    rng = np.random.default_rng(10)
    target = rng.standard_normal(shape).astype(np.float32)
    start = np.zeros(shape, np.float32)
    full = [tf.Variable(start), tf.Variable(np.zeros(shape, np.float32)),
            tf.Variable(np.zeros(shape, np.float32))]
    compact = tf.Variable(start)
    ms = _state(kind, np.zeros(shape, np.float32), False)
    mom = _state(kind, np.zeros(shape, np.float32), True)
    for step in range(500):
        noise = rng.standard_normal(shape).astype(np.float32) * 0.5
        for var, slot_ms, slot_mom in ((full[0], full[1], full[2]), (compact, ms, mom)):
            grad = tf.constant(var.numpy() - target + noise)
            rmsprop_op.update(var, slot_ms, grad, mom=slot_mom, lr=1e-3, rho=0.9, momentum=0.9,
                              epsilon=1e-7)
    moved = np.abs(full[0].numpy() - start).mean()
    apart = np.abs(full[0].numpy() - compact.numpy()).mean()
    assert np.all(np.isfinite(compact.numpy()))
    assert apart < 0.02 * moved, (apart, moved)


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
@pytest.mark.parametrize("momentum", [0.95, 0.99])
def test_momentum_decays_when_gradients_stop(kind, momentum):
    """After the gradients stop, momentum decays geometrically as with
    float32 state, so the variable comes to rest where float32 state's does
    (a code that kept a decaying value would move it on forever)."""
    shape = (8192,)
    rng = np.random.default_rng(11)
    grad = tf.constant(rng.standard_normal(shape).astype(np.float32))
    zero = tf.zeros(shape)
    start = rng.standard_normal(shape).astype(np.float32)
    full = [tf.Variable(start), tf.Variable(np.zeros(shape, np.float32)),
            tf.Variable(np.zeros(shape, np.float32))]
    compact = [tf.Variable(start), _state(kind, np.zeros(shape, np.float32), False),
               _state(kind, np.zeros(shape, np.float32), True)]
    hyper = dict(lr=0.01, rho=0.9, momentum=momentum, epsilon=1e-7)
    travel = {}
    for name, (var, ms, mom) in (("full", full), ("compact", compact)):
        for g in [grad] * 5 + [zero] * 600:
            rmsprop_op.update(var, ms, g, mom=mom, **hyper)
        travel[name] = np.abs(var.numpy() - start).max()
    rest = momentum ** 600 * 100  # what float32 state still moves, at most
    assert np.abs(compact[0].numpy() - full[0].numpy()).max() < 0.1 * travel["full"] + rest


def test_stochastic_rounding_is_reproducible():
    def run():
        v = tf.Variable(np.ones((4096,), np.float32))
        ms = compact_state.Bfloat16State(tf.Variable(tf.zeros((4096,), tf.bfloat16)),
                                         lambda: tf.constant([1, 2], tf.int32))
        plain_tf.update(v, ms, tf.fill((4096,), 0.3), **HYPER)
        return ms.variable.numpy().view(np.uint16)
    first = run()
    np.testing.assert_array_equal(first, run())
    assert len(np.unique(first)) == 2  # both neighbours of 0.009 occur


# The optimizer.

def _model(seed=0):
    import keras
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                             keras.layers.Dense(10)])


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 64)).astype(np.float32)
    return x, x[:, :10].argmax(1)


def _compiled(state_dtype, seed=0, **kwargs):
    from keras_optimizer import RMSprop
    model = _model(seed)
    model.compile(RMSprop(1e-3, momentum=0.9, centered=True, state_dtype=state_dtype, **kwargs),
                  "sparse_categorical_crossentropy")
    return model


def _optimizer_arrays(optimizer):
    return [np.asarray(v.numpy()) for v in optimizer.variables]


@pytest.mark.parametrize("state_dtype, codes", [("int8", ("uint8", "int8")),
                                                ("bfloat16", ("bfloat16", "bfloat16"))])
def test_slots_of_large_float32_variables_are_compact(state_dtype, codes):
    model = _compiled(state_dtype)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    by_name = {v.path.split("/")[-1]: v for v in optimizer.variables}
    kernel = next(k[:-len("_velocity")] for k, v in by_name.items()
                  if k.endswith("_velocity") and v.shape == (64, 128))
    assert by_name[kernel + "_velocity"].dtype == codes[0]
    assert by_name[kernel + "_momentum"].dtype == codes[1]
    assert by_name[kernel + "_average_gradient"].dtype == codes[1]
    small = [k for k, v in by_name.items() if k.endswith("_velocity") and v.shape != (64, 128)]
    assert len(small) == 3 and all(by_name[k].dtype == "float32" for k in small)
    scales = [k for k in by_name if k.endswith("_scale")]
    if state_dtype == "int8":
        assert sorted(scales) == sorted(kernel + s for s in ("_velocity_scale", "_momentum_scale",
                                                             "_average_gradient_scale"))
        assert all(by_name[k].shape == (32, 1) and by_name[k].dtype == "float32" for k in scales)
    else:
        assert scales == []


def test_bad_state_arguments_are_refused():
    from keras_optimizer import RMSprop
    with pytest.raises(ValueError, match="state_dtype"):
        RMSprop(state_dtype="float8")
    with pytest.raises(ValueError, match="stochastic_rounding"):
        RMSprop(state_dtype="int8", stochastic_rounding=True)
    assert RMSprop(state_dtype=tf.bfloat16).state_dtype == "bfloat16"


def test_state_memory_of_a_million_row_table():
    """1M x 64 with momentum and centered, counted from optimizer.variables:
    int8 at least 3.8x and bfloat16 at least 1.95x smaller than float32."""
    import keras
    from keras_optimizer import RMSprop
    table = keras.Variable(tf.zeros((1_000_000, 64)))
    state = {}
    for state_dtype in (None, "bfloat16", "int8"):
        optimizer = RMSprop(momentum=0.9, centered=True, state_dtype=state_dtype)
        optimizer.build([table])
        state[state_dtype] = sum(np.dtype(v.dtype).itemsize * int(np.prod(v.shape))
                                 for v in optimizer.variables[2:])  # after iterations, lr
        del optimizer
    assert state[None] == 3 * 4 * 64_000_000
    assert state[None] / state["bfloat16"] >= 1.95
    assert state[None] / state["int8"] >= 3.8


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
def test_config_save_and_resume_bit_for_bit(state_dtype, tmp_path):
    import keras
    from keras_optimizer import RMSprop
    x, y = _data()
    model = _compiled(state_dtype, stochastic_rounding=state_dtype == "bfloat16")
    config = model.optimizer.get_config()
    assert config["state_dtype"] == state_dtype
    again = RMSprop.from_config(config)
    assert (again.state_dtype, again.stochastic_rounding) == (state_dtype, state_dtype == "bfloat16")
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.optimizer.state_dtype == state_dtype
    for a, b in zip(_optimizer_arrays(model.optimizer), _optimizer_arrays(loaded.optimizer)):
        np.testing.assert_array_equal(a, b)
    checkpointed = _compiled(state_dtype, seed=1, stochastic_rounding=state_dtype == "bfloat16")
    checkpointed.optimizer.build(checkpointed.trainable_variables)
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(model=checkpointed, optimizer=checkpointed.optimizer).read(
        str(tmp_path / "ckpt")).assert_consumed()
    for other in (loaded, checkpointed):
        other.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    for other in (loaded, checkpointed):
        for a, b in zip(model.get_weights() + _optimizer_arrays(model.optimizer),
                        other.get_weights() + _optimizer_arrays(other.optimizer)):
            np.testing.assert_array_equal(a, b)


def test_state_is_set_as_codes_and_scales():
    """Keras 3 optimizers have no `set_weights`; their state is set through
    `load_own_variables` (or by assigning `optimizer.variables`), which takes
    what `save_own_variables` gives: for int8 state the codes (uint8 / int8)
    and block scales (float32), in optimizer.variables order."""
    x, y = _data()
    model = _compiled("int8")
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    other = _compiled("int8")
    other.set_weights(model.get_weights())
    other.optimizer.build(other.trainable_variables)
    store = {}
    model.optimizer.save_own_variables(store)
    assert {np.asarray(a).dtype.name for a in store.values()} >= {"uint8", "int8", "float32"}
    other.optimizer.load_own_variables(store)
    for m in (model, other):
        m.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_documented_example_holds_with_compact_state():
    from keras_optimizer import RMSprop
    opt = RMSprop(learning_rate=0.1, state_dtype="int8")
    var1 = tf.Variable(10.0)
    assert opt.minimize(lambda: (var1 ** 2) / 2.0, [var1]).numpy() == 1
    assert var1.numpy() == np.float32(9.683772)


@pytest.mark.parametrize("state_dtype", ["int8", "bfloat16"])
def test_fused_op_is_the_plain_tf_path(state_dtype, monkeypatch):
    """Five eager steps through the optimizer (the fused op where the kernels
    are loaded) give the same bits as through plain_tf. (Inside a
    tf.function TensorFlow rewrites plain_tf's x / sqrt(d) into x * rsqrt(d),
    as it does the stock optimizer's.)"""
    import keras_optimizer.rmsprop as rmsprop_module
    import keras
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    x, y = _data()
    models = [_compiled(state_dtype), _compiled(state_dtype)]
    for i, model in enumerate(models):
        if i == 1:
            monkeypatch.setattr(rmsprop_module, "ops_for", lambda *a, **k: plain_tf)
        for step in range(5):
            with tf.GradientTape() as tape:
                loss = loss_fn(y[step * 32:(step + 1) * 32], model(x[step * 32:(step + 1) * 32]))
            model.optimizer.apply(tape.gradient(loss, model.trainable_variables),
                                  model.trainable_variables)
    fused, plain = models
    for a, b in zip(fused.get_weights() + _optimizer_arrays(fused.optimizer),
                    plain.get_weights() + _optimizer_arrays(plain.optimizer)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("extras", [{}, dict(weight_decay=0.01, clipnorm=1.0, use_ema=True)])
def test_jit_compiled_fit_with_compact_state_follows_the_unjitted_one(extras):
    from keras_optimizer import RMSprop
    x, y = _data()
    losses, averages = [], []
    for jit in (False, True):
        model = _model()
        model.compile(RMSprop(1e-3, momentum=0.9, state_dtype="int8", **extras),
                      "sparse_categorical_crossentropy", jit_compile=jit)
        losses.append(model.fit(x, y, batch_size=64, epochs=3, shuffle=False, verbose=0)
                      .history["loss"])
        # The weights' moving averages (Keras's own list; empty without use_ema).
        averages.append([v.numpy() for v in getattr(model.optimizer,
                                                    "_model_variables_moving_average", [])])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)
    assert len(averages[0]) == (4 if extras else 0)
    for a, b in zip(*averages):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-4)


def test_embedding_rows_outside_the_batch_keep_their_state():
    import keras
    from keras_optimizer import RMSprop
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,), dtype="int32"), keras.layers.Embedding(10_000, 64),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    model.compile(RMSprop(momentum=0.9, state_dtype="int8"), "mse")
    model.fit(np.array([[1, 2], [9000, 2]], np.int32), np.ones((2, 1), np.float32), verbose=0)
    by_name = {v.path.split("/")[-1]: v.numpy() for v in model.optimizer.variables}
    codes = next(v for k, v in by_name.items() if k.endswith("embeddings_velocity"))
    scales = next(v for k, v in by_name.items() if k.endswith("embeddings_velocity_scale"))
    touched_blocks = {0, 9000 // 4}
    assert set(np.nonzero(scales[:, 0])[0]) == touched_blocks
    assert set(np.nonzero(codes.any(axis=1))[0]) == {1, 2, 9000}
