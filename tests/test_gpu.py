"""The CUDA kernels against the CPU kernels, on the first GPU.

Skipped where TensorFlow sees no GPU. Both kernels compute the formula of
rmsprop_math.h in the same order with IEEE rounding, so results must agree bit
for bit. Soft device placement is off while these tests run: an op that
cannot run on the GPU fails instead of quietly running on the CPU.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

import rmsprop_op
from rmsprop_op import _loader
from tests.bundle import Bundle, apply_group, apply_update, hyper_for
from tests.helpers import (as_numpy, as_variables, assert_bitwise_equal, initial_slots,
                           random_values)
from tests.reference import NUMPY_DTYPES

GPU, CPU = "/GPU:0", "/CPU:0"
HYPER = dict(lr=0.01, rho=0.9, momentum=0.5, epsilon=1e-7)
DTYPES = list(NUMPY_DTYPES)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not tf.config.list_physical_devices("GPU"),
                                 reason="TensorFlow sees no GPU")]


@pytest.fixture(autouse=True)
def _gpu_kernels_only():
    if not rmsprop_op.GPU_KERNELS_LOADED:
        if os.path.exists(_loader.GPU_LIBRARY):
            pytest.fail(f"{_loader.GPU_LIBRARY} exists but did not load (see the warning "
                        "on import)")
        pytest.skip("the GPU kernels are not built (make cuda-compile-check)")
    soft = tf.config.get_soft_device_placement()
    tf.config.set_soft_device_placement(False)
    yield
    tf.config.set_soft_device_placement(soft)


def _hyper(with_mom):
    return dict(HYPER, momentum=HYPER["momentum"] if with_mom else 0.0)


def _apply_dense(variables, grad, device):
    with tf.device(device):
        apply_update(variables, tf.constant(grad), hyper_for(variables, HYPER))


def _apply_sparse(variables, grad, indices, device):
    with tf.device(device):
        apply_update(variables, tf.constant(grad), hyper_for(variables, HYPER),
                     tf.constant(indices))


def test_variables_live_on_the_gpu():
    var = as_variables([np.zeros(3, np.float32)], GPU)[0]
    assert "GPU:0" in var.device


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("with_mom", [False, True])
@pytest.mark.parametrize("shape", [(37, 33), (4096,)])  # odd tail; whole vectors
def test_dense_matches_cpu(dtype, centered, with_mom, shape):
    initial = initial_slots(shape, dtype, centered, with_mom)
    on_gpu, on_cpu = as_variables(initial, GPU), as_variables(initial, CPU)
    for step in range(3):
        g = random_values(shape, dtype, 100 + step)
        _apply_dense(on_gpu, g, GPU)
        _apply_dense(on_cpu, g, CPU)
    assert_bitwise_equal(as_numpy(on_gpu), as_numpy(on_cpu))


def test_large_dense_update_matches_cpu():
    shape = ((1 << 22) + 3,)
    initial = initial_slots(shape, "float32", True, True)
    on_gpu, on_cpu = as_variables(initial, GPU), as_variables(initial, CPU)
    g = random_values(shape, "float32", 7)
    _apply_dense(on_gpu, g, GPU)
    _apply_dense(on_cpu, g, CPU)
    assert_bitwise_equal(as_numpy(on_gpu), as_numpy(on_cpu))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered,with_mom", [(False, False), (True, True)])
def test_group_matches_cpu(dtype, centered, with_mom):
    # More variables than one kernel launch takes, of every kind of size.
    shapes = [(3,), (17, 5), (1,), (0,), (1000,), (2, 3, 4)] * 25
    initial = [initial_slots(s, dtype, centered, with_mom, seed=10 * i) for i, s in enumerate(shapes)]
    grads = [random_values(s, dtype, 5000 + i) for i, s in enumerate(shapes)]
    results = []
    for device in (GPU, CPU):
        variables = [as_variables(x, device) for x in initial]
        with tf.device(device):
            apply_group(variables, [tf.constant(g) for g in grads], _hyper(with_mom))
        results.append([as_numpy(v) for v in variables])
    assert_bitwise_equal(*results)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("with_mom", [False, True])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("row_shape", [(3, 7), (64,)])  # scalar rows; vector rows
def test_sparse_matches_cpu(dtype, centered, with_mom, index_dtype, row_shape):
    shape = (50,) + row_shape
    initial = initial_slots(shape, dtype, centered, with_mom)
    rng = np.random.default_rng(11)
    # Unsorted, with duplicates, one row named many times.
    indices = rng.integers(0, 50, size=300).astype(index_dtype)
    indices[::4] = 17
    g = random_values((len(indices),) + row_shape, dtype, 300)
    on_gpu, on_cpu = as_variables(initial, GPU), as_variables(initial, CPU)
    _apply_sparse(on_gpu, g, indices, GPU)
    _apply_sparse(on_cpu, g, indices, CPU)
    assert_bitwise_equal(as_numpy(on_gpu), as_numpy(on_cpu))


def test_sparse_is_deterministic():
    initial = initial_slots((40, 16), "float32", True, True)
    indices = np.random.default_rng(3).integers(0, 40, size=2000)
    g = random_values((2000, 16), "float32", 6)
    results = []
    for _ in range(3):
        variables = as_variables(initial, GPU)
        _apply_sparse(variables, g, indices, GPU)
        results.append(as_numpy(variables))
    for r in results[1:]:
        assert_bitwise_equal(r, results[0])


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_empty_indices(index_dtype):
    initial = initial_slots((6, 4), "float32", False, True)
    variables = as_variables(initial, GPU)
    _apply_sparse(variables, np.zeros((0, 4), np.float32), np.zeros([0], index_dtype), GPU)
    assert_bitwise_equal(as_numpy(variables), initial)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("bad", [50, -1])
def test_sparse_bad_index_fails_and_writes_nothing(index_dtype, bad):
    initial = initial_slots((50, 8), "float32", True, True)
    variables = as_variables(initial, GPU)
    indices = np.array([3, 3, 49, bad, 0, bad], index_dtype)
    g = random_values((len(indices), 8), "float32", 4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[3\] is out of range"):
        _apply_sparse(variables, g, indices, GPU)
    assert_bitwise_equal(as_numpy(variables), initial)


def _special_values(shape, dtype, seed):
    """Random values with one in four replaced by zeros of both signs,
    subnormals, the smallest normal, infinities, NaN and huge values."""
    x = random_values(shape, dtype, seed)
    real = np.zeros((), x.dtype).real.dtype
    info = np.finfo(real) if real != np.dtype(NUMPY_DTYPES["bfloat16"]) else None
    tiny = float(info.tiny) if info is not None else 1.1754944e-38
    huge = float(info.max) / 4 if info is not None else 1e38
    specials = np.array([0.0, -0.0, tiny / 2, tiny, -tiny / 3, 1e-40, 5e-8, np.inf, -np.inf,
                         np.nan, huge, -huge])
    rng = np.random.default_rng(seed + 1)
    mask = rng.random(shape) < 0.25
    picked = specials[rng.integers(0, len(specials), size=shape)].astype(real)
    x = x.copy()
    if x.dtype.kind == "c":
        x.real[mask] = picked[mask]
    else:
        x[mask] = picked[mask]
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered,with_mom", [(False, False), (True, True), (True, False)])
@pytest.mark.parametrize("epsilon_after_sqrt", [False, True])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_special_values_match_cpu_bit_for_bit(dtype, centered, with_mom, epsilon_after_sqrt, kind):
    """Subnormals (flushed alike), NaN (one canonical NaN), Inf, -0, huge."""
    shape = (64, 9)
    initial = Bundle(*[None if x is None else _special_values(shape, dtype, 40 + i)
                       for i, x in enumerate(initial_slots(shape, dtype, centered, with_mom))])
    indices = np.random.default_rng(8).integers(0, 64, size=100)
    g = _special_values((100, 9) if kind == "sparse" else shape, dtype, 77)
    results = []
    for device in (GPU, CPU):
        variables = as_variables(initial, device)
        with tf.device(device):
            apply_update(variables, tf.constant(g), _hyper(with_mom),
                         tf.constant(indices) if kind == "sparse" else None,
                         epsilon_after_sqrt=epsilon_after_sqrt)
        results.append(as_numpy(variables))
    assert_bitwise_equal(*results)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_use_locking_matches_cpu(kind):
    initial = initial_slots((50, 8), "float32", True, True)
    indices = np.random.default_rng(2).integers(0, 50, size=80)
    g = random_values((80, 8) if kind == "sparse" else (50, 8), "float32", 9)
    results = []
    for device in (GPU, CPU):
        variables = as_variables(initial, device)
        with tf.device(device):
            apply_update(variables, tf.constant(g), _hyper(True),
                         tf.constant(indices) if kind == "sparse" else None, use_locking=True)
        results.append(as_numpy(variables))
    assert_bitwise_equal(*results)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_a_shared_buffer_is_copied_before_writing(kind):
    """A tensor read from the variable shares its buffer: the update must
    write a copy (copy-on-write), leaving the tensor read as it was."""
    initial = initial_slots((50, 8), "float32", False, True)
    indices = np.array([1, 4, 4, 49], np.int64)
    g = random_values((4, 8) if kind == "sparse" else (50, 8), "float32", 12)
    results = []
    for device in (GPU, CPU):
        variables = as_variables(initial, device)
        with tf.device(device):
            held = variables.var.read_value()
            apply_update(variables, tf.constant(g), _hyper(True),
                         tf.constant(indices) if kind == "sparse" else None)
        np.testing.assert_array_equal(held.numpy(), initial[0])
        results.append(as_numpy(variables))
    assert_bitwise_equal(*results)


def test_sparse_bad_index_fails_inside_a_function():
    """The GPU's sparse op is asynchronous: the error still reaches the
    caller, and nothing is written."""
    initial = initial_slots((50, 8), "float32", False, False)
    var, ms, _, _ = variables = as_variables(initial, GPU)
    g = tf.constant(random_values((3, 8), "float32", 4))

    @tf.function
    def step(indices):
        with tf.device(GPU):
            rmsprop_op.update(var, ms, g, indices=indices, momentum=0.0,
                              lr=0.01, rho=0.9, epsilon=1e-7)

    step(tf.constant([0, 1, 2]))
    after_good = as_numpy(variables)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] is out of range"):
        step(tf.constant([0, 99, 2]))
    assert_bitwise_equal(as_numpy(variables), after_good)


REAL_DTYPES = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("dtype", REAL_DTYPES)
@pytest.mark.parametrize("centered,with_mom", [(False, False), (True, True)])
def test_group_with_extras_matches_cpu(dtype, centered, with_mom):
    # Loss scale, per-variable clip divisors, clip value, weight decay and EMA
    # over more variables than one launch takes.
    shapes = [(3,), (17, 5), (1,), (0,), (1000,), (2, 3, 4)] * 10
    initial = [initial_slots(s, dtype, centered, with_mom, seed=10 * i) for i, s in enumerate(shapes)]
    emas = [random_values(s, dtype, 900 + i) for i, s in enumerate(shapes)]
    grads = [random_values(s, dtype, 5000 + i) for i, s in enumerate(shapes)]
    divisors = np.linspace(0.5, 3.0, len(shapes))
    results = []
    for device in (GPU, CPU):
        variables = [as_variables(x, device) for x in initial]
        ema_vars = as_variables(emas, device)
        with tf.device(device):
            apply_group(variables, [tf.constant(g) for g in grads], _hyper(with_mom),
                        emas=ema_vars, ema_momentum=0.9, grad_divisor=4.0, clip_multiplier=0.75,
                        clip_divisors=divisors, clip_value=0.3, weight_decay=0.05)
        results.append([as_numpy(v) for v in variables] + [as_numpy(ema_vars)])
    assert_bitwise_equal(*results)


@pytest.mark.parametrize("dtype", REAL_DTYPES)
def test_squared_norms_match_cpu(dtype):
    # One element, a partial block, several whole blocks plus a tail.
    grads = [random_values(s, dtype, 70 + i)
             for i, s in enumerate([(1,), (300,), (3 * 16384 + 5,), (0,), (128, 129)])]
    results = []
    for device in (GPU, CPU):
        with tf.device(device):
            results.append(rmsprop_op.gradient_squared_norms(
                [tf.constant(g) for g in grads], 2.0).numpy())
    assert_bitwise_equal([results[0]], [results[1]])


def test_keras_fused_extras_on_the_gpu_match_cpu():
    import keras

    import keras_optimizer
    results = []
    for device in (GPU, CPU):
        with tf.device(device):
            variables = [keras.Variable(np.linspace(-1, 1, 40, dtype=np.float32).reshape(8, 5)),
                         keras.Variable(np.ones(5, np.float32))]
            optimizer = keras_optimizer.RMSprop(momentum=0.9, weight_decay=0.01, use_ema=True,
                                                global_clipnorm=1.0, loss_scale_factor=16.0)
            optimizer.build(variables)
            for step in range(5):
                grads = [tf.constant(random_values(v.shape, "float32", 40 + step)) for v in variables]
                optimizer.apply(grads, variables)
        results.append([v.numpy() for v in variables] +
                       [a.numpy() for a in optimizer._model_variables_moving_average])
    assert_bitwise_equal(results[0], results[1])


def _compact_slots(kind, shape, device, seed):
    from rmsprop_op import compact_state
    rng = np.random.default_rng(seed)
    values = {"ms": np.square(rng.standard_normal(shape)).astype(np.float32),
              "mg": rng.standard_normal(shape).astype(np.float32) * 0.1,
              "mom": rng.standard_normal(shape).astype(np.float32) * 0.1}
    slots = {}
    with tf.device(device):
        for name, x in values.items():
            if kind == "bfloat16":
                slots[name] = compact_state.Bfloat16State(tf.Variable(tf.cast(x, tf.bfloat16)))
            else:
                codes, scales = compact_state.quantize(tf.constant(x), signed=name != "ms")
                slots[name] = compact_state.Int8State(tf.Variable(codes), tf.Variable(scales))
    return slots


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("with_mom", [False, True])
@pytest.mark.parametrize("shape", [(1000, 64), (300, 700), (5000,)])
def test_compact_state_dense_matches_cpu(kind, centered, with_mom, shape):
    """The CUDA kernels with compact slots against the CPU kernels, bit for
    bit, over three steps."""
    def step(var, ema, slots, grad):
        rmsprop_op.update(var, slots["ms"], grad, mg=slots["mg"] if centered else None,
                          mom=slots["mom"] if with_mom else None, **_hyper(with_mom))
    assert_bitwise_equal(*_dense_compact_runs(kind, shape, step))


def _dense_compact_runs(kind, shape, step):
    """var, ema and every state variable after three steps
    `step(var, ema, slots, grad)` on the GPU, then on the CPU."""
    grads = [np.random.default_rng(s).standard_normal(shape).astype(np.float32) for s in range(3)]
    results = []
    for device in (GPU, CPU):
        slots = _compact_slots(kind, shape, device, 1)
        with tf.device(device):
            var = tf.Variable(np.random.default_rng(2).standard_normal(shape).astype(np.float32))
            ema = tf.Variable(np.random.default_rng(3).standard_normal(shape).astype(np.float32))
            for grad in grads:
                step(var, ema, slots, tf.constant(grad))
        results.append([var.numpy(), ema.numpy()] +
                       [v.numpy() for s in slots.values() for v in s.variables])
    return results


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
@pytest.mark.parametrize("extras", [
    dict(grad_divisor=8.0, clip_multiplier=0.7, clip_divisors=[1.3], clip_value=0.25,
         weight_decay=0.1, ema_momentum=0.9),
    dict(weight_decay=0.02),
])
def test_compact_state_dense_with_extras_matches_cpu(kind, extras):
    """Keras's steps in the CUDA kernel with compact slots (decided at run
    time) against the CPU loops (fixed at compile time), bit for bit."""
    def step(var, ema, slots, grad):
        rmsprop_op.group_apply_rmsprop(
            [var], [slots["mg"]], [slots["ms"]], [slots["mom"]], [grad],
            emas=[ema] if "ema_momentum" in extras else None, **_hyper(True), **extras)
    assert_bitwise_equal(*_dense_compact_runs(kind, (300, 700), step))


def _compact_update(var, slots, grad, indices, centered, with_mom):
    rmsprop_op.update(var, slots["ms"], tf.constant(grad),
                      mg=slots["mg"] if centered else None,
                      mom=slots["mom"] if with_mom else None,
                      indices=None if indices is None else tf.constant(indices),
                      **_hyper(with_mom))


def _compact_state(var, slots):
    return [var.numpy()] + [v.numpy() for s in slots.values() for v in s.variables]


def _sparse_compact_indices(rows, index_dtype, seed):
    """Indices with duplicates (summed in position order), the first and last
    rows, and neighbouring rows that share a block with untouched ones."""
    rng = np.random.default_rng(seed)
    indices = np.concatenate([[7, 7, 0, rows - 1, 8, 7, 3, rows - 1],
                              rng.integers(0, rows, 40), [7, 3, 3]])
    return indices.astype(index_dtype)


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("with_mom", [False, True])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape", [(1000, 64), (300, 700), (5000,)])
def test_compact_state_sparse_matches_cpu(kind, centered, with_mom, index_dtype, shape):
    """The sparse CUDA kernel with compact slots against the CPU kernel, bit
    for bit, over three steps: (1000, 64) has 4 rows per block, (300, 700)
    3 blocks per row, (5000,) 256 rows per block."""
    steps = [_sparse_compact_indices(shape[0], index_dtype, s) for s in range(3)]
    grads = [np.random.default_rng(10 + s).standard_normal((len(i),) + shape[1:])
             .astype(np.float32) for s, i in enumerate(steps)]
    results = []
    for device in (GPU, CPU):
        slots = _compact_slots(kind, shape, device, 1)
        with tf.device(device):
            var = tf.Variable(np.random.default_rng(2).standard_normal(shape).astype(np.float32))
            assert rmsprop_op._fused_compact(var, [slots["ms"]])  # the fused op, not plain TF
            for indices, grad in zip(steps, grads):
                _compact_update(var, slots, grad, indices, centered, with_mom)
        results.append(_compact_state(var, slots))
    assert_bitwise_equal(*results)


@pytest.mark.parametrize("kind", ["int8", "bfloat16"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("bad", [300, -1])
def test_compact_state_sparse_bad_index_fails_and_writes_nothing(kind, index_dtype, bad):
    shape = (300, 70)
    slots = _compact_slots(kind, shape, GPU, 3)
    with tf.device(GPU):
        var = tf.Variable(np.random.default_rng(4).standard_normal(shape).astype(np.float32))
        initial = _compact_state(var, slots)
        indices = np.array([3, 3, 299, bad, 0, bad], index_dtype)
        g = random_values((len(indices), 70), "float32", 5)
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"indices\[3\] is out of range"):
            _compact_update(var, slots, g, indices, True, True)
        _compact_update(var, slots, np.zeros((0, 70), np.float32), np.zeros([0], index_dtype),
                        True, True)
    assert_bitwise_equal(_compact_state(var, slots), initial)
