"""The ops and the optimizers inside XLA (jit_compile=True): the compiled
program calls our kernels (a custom call, not the plain formula), with the
bits of the same ops run without XLA, and bad values fail as they do
without XLA, with nothing written."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
import rmsprop_op
from tests.bundle import apply_group, apply_update, hyper_for
from tests.helpers import (as_numpy, as_variables, assert_bitwise_equal, initial_slots,
                           random_values)
from tests.processes import run_python
from tests.reference import NUMPY_DTYPES

# Where the variables of these tests live (TensorFlow's default placement):
# the GPU on a machine with one (`make gpu-report`), else the CPU.
DEVICE = "GPU" if rmsprop_op.GPU_KERNELS_LOADED else "CPU"
pytestmark = pytest.mark.skipif(
    DEVICE not in rmsprop_op.XLA_KERNELS,
    reason=f"TensorFlow {tf.__version__}: no XLA kernels for the {DEVICE} "
           "(see the README's compatibility table)")

DTYPES = list(NUMPY_DTYPES)
HYPER = dict(lr=0.01, rho=0.9, momentum=0.5, epsilon=1e-7)
VARIANTS = [(c, m, e) for c in (False, True) for m in (False, True) for e in (False, True)
            if not (c and e)]


def jit(fn):
    """fn (which returns an op, or nothing) as a tf.function XLA compiles."""
    def body(*args):
        fn(*args)
    return tf.function(body, jit_compile=True)


def compiled_and_plain(fn):
    """Runs fn() compiled by XLA; returns the compiled program (HLO text)."""
    compiled = jit(fn)
    hlo = compiled.experimental_get_compiler_ir()(stage="hlo")
    compiled()
    return hlo


def twice(values):
    """Two independent sets of variables of `values` (a Bundle)."""
    return as_variables(values), as_variables(values)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered,with_mom,eps_after", VARIANTS)
def test_dense_under_xla_is_the_op_bit_for_bit(dtype, centered, with_mom, eps_after):
    shape = (37, 5)
    values = initial_slots(shape, dtype, centered, with_mom, seed=3)
    grad = tf.constant(random_values(shape, dtype, 11))
    hyper = dict(hyper_for(values, HYPER), epsilon_after_sqrt=eps_after)
    xla, plain = twice(values)
    for _ in range(3):
        hlo = compiled_and_plain(lambda: apply_update(xla, grad, hyper))
        apply_update(plain, grad, hyper)
    assert 'custom_call_target="rmsprop_op_apply"' in hlo
    assert_bitwise_equal(as_numpy(xla), as_numpy(plain))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", [tf.int32, tf.int64])
@pytest.mark.parametrize("centered,with_mom", [(False, False), (True, True)])
def test_sparse_under_xla_is_the_op_bit_for_bit(dtype, index_dtype, centered, with_mom):
    shape = (50, 6)
    values = initial_slots(shape, dtype, centered, with_mom, seed=5)
    indices = tf.constant([3, 0, 49, 3, 17, 3], index_dtype)  # duplicates summed
    grad = tf.constant(random_values((6, 6), dtype, 13))
    hyper = hyper_for(values, HYPER)
    xla, plain = twice(values)
    hlo = compiled_and_plain(lambda: apply_update(xla, grad, hyper, indices=indices))
    apply_update(plain, grad, hyper, indices=indices)
    assert 'custom_call_target="rmsprop_op_sparse_apply"' in hlo
    assert_bitwise_equal(as_numpy(xla), as_numpy(plain))


EXTRAS = {
    "none": {},
    "loss scale and clipping": dict(grad_divisor=3.0, clip_multiplier=0.7,
                                    clip_divisors=[1.5, 1.0, 2.5], clip_value=0.4),
    "weight decay": dict(weight_decay=0.01),
    "ema": dict(ema_momentum=0.99),
}


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("extras", list(EXTRAS))
@pytest.mark.parametrize("centered,with_mom", [(False, True), (True, False)])
def test_grouped_under_xla_is_the_op_bit_for_bit(dtype, extras, centered, with_mom):
    shapes = [(7, 3), (64,), (0,)]
    values = [initial_slots(s, dtype, centered, with_mom, seed=2 * i)
              for i, s in enumerate(shapes)]
    grads = [tf.constant(random_values(s, dtype, 20 + i)) for i, s in enumerate(shapes)]
    hyper = hyper_for(values[0], HYPER)
    kwargs = dict(EXTRAS[extras])
    if "clip_divisors" in kwargs:
        kwargs["clip_divisors"] = tf.constant(kwargs["clip_divisors"], tf.float64)
    sides = []
    for _ in range(2):
        bundles = [as_variables(v) for v in values]
        emas = [tf.Variable(v.var) for v in values] if extras == "ema" else None
        sides.append((bundles, emas))

    def group(side):
        bundles, emas = side
        apply_group(bundles, grads, hyper, **kwargs, **({"emas": emas} if emas else {}))
    hlo = compiled_and_plain(lambda: group(sides[0]))
    group(sides[1])
    assert 'custom_call_target="rmsprop_op_apply"' in hlo
    for (b_xla, e_xla), (b_plain, e_plain) in [sides]:
        for x, p in zip(b_xla, b_plain):
            assert_bitwise_equal(as_numpy(x), as_numpy(p))
        for x, p in zip(e_xla or [], e_plain or []):
            assert_bitwise_equal([x.numpy()], [p.numpy()])


def test_squared_norms_under_xla():
    grads = [tf.constant(random_values(s, "float32", i)) for i, s in enumerate([(300, 70), (5,)])]
    compiled = tf.function(lambda: rmsprop_op.gradient_squared_norms(grads, 2.0),
                           jit_compile=True)
    assert "rmsprop_op_squared_norms" in compiled.experimental_get_compiler_ir()(stage="hlo")
    np.testing.assert_array_equal(compiled().numpy(),
                                  rmsprop_op.gradient_squared_norms(grads, 2.0).numpy())


def test_bad_index_under_xla_fails_and_writes_nothing():
    values = initial_slots((10, 4), "float32", False, True, seed=1)
    bundle = as_variables(values)
    f = jit(lambda: apply_update(bundle, tf.ones((2, 4)), HYPER, indices=tf.constant([1, 10])))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"indices\[1\] is out of range"):
        f()
    assert_bitwise_equal(as_numpy(bundle), values)


def test_bad_value_under_xla_fails_and_writes_nothing():
    values = initial_slots((8,), "float32", False, False, seed=1)
    bundle = as_variables(values)
    f = jit(lambda momentum: apply_update(bundle, tf.ones(8), dict(HYPER, momentum=momentum)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="no momentum slot"):
        f(tf.constant(0.5, tf.float64))
    assert_bitwise_equal(as_numpy(bundle), values)


def test_bad_shape_is_a_compile_time_error_naming_the_input():
    bundle = as_variables(initial_slots((8,), "float32", False, False))
    # An unknown static shape: the check falls to the XLA kernel, at compile time.
    mom = tf.Variable(tf.ones(5), shape=tf.TensorShape(None))
    f = jit(lambda: rmsprop_op.apply_rmsprop(bundle.var, bundle.ms, mom, tf.ones(8), **HYPER))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"mom has shape \[5\]"):
        f()
    assert_bitwise_equal(as_numpy(bundle), as_numpy(as_variables(
        initial_slots((8,), "float32", False, False))))


OPTIMIZER_CONFIGS = [
    dict(),
    dict(momentum=0.9, centered=True),
    dict(clipnorm=1.0, weight_decay=0.01, use_ema=True),
    dict(global_clipnorm=0.5, momentum=0.5),
]


@pytest.mark.parametrize("config", OPTIMIZER_CONFIGS, ids=str)
def test_keras_optimizer_under_xla_runs_our_kernels(config):
    """apply_gradients compiled by XLA and not: the same variables, bit for
    bit, and the compiled step calls our kernels."""
    shapes = [(16, 8), (8,), (300,)]
    grads = [tf.constant(random_values(s, "float32", 40 + i)) for i, s in enumerate(shapes)]
    sides = []
    for compiled in (True, False):
        variables = [keras.Variable(random_values(s, "float32", i)) for i, s in enumerate(shapes)]
        opt = keras_optimizer.RMSprop(learning_rate=0.01, **config)
        opt.build(variables)
        step = tf.function(lambda: opt.apply(grads, variables) and None, jit_compile=compiled)
        for _ in range(3):
            step()
        sides.append((variables, opt, step))
    hlo = sides[0][2].experimental_get_compiler_ir()(stage="hlo")
    assert "rmsprop_op_apply" in hlo
    for a, b in zip(sides[0][1].variables, sides[1][1].variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


def test_embedding_gradient_under_xla_takes_the_sparse_kernel():
    table = keras.Variable(random_values((100, 4), "float32", 1))
    opt = keras_optimizer.RMSprop(learning_rate=0.01, momentum=0.9)
    opt.build([table])
    grad = tf.IndexedSlices(tf.ones((3, 4)), tf.constant([5, 7, 5]), tf.constant([100, 4]))
    step = tf.function(lambda: opt.apply([grad], [table]) and None, jit_compile=True)
    assert "rmsprop_op_sparse_apply" in step.experimental_get_compiler_ir()(stage="hlo")
    step()
    changed = np.flatnonzero(np.any(np.asarray(table) != random_values((100, 4), "float32", 1), 1))
    assert changed.tolist() == [5, 7]


@pytest.mark.subprocess
def test_fit_with_jit_compile_trains_with_our_kernels(tmp_path):
    """model.fit(jit_compile=True): XLA's dumped program calls our kernels,
    and the model trains as stock Keras's under XLA does."""
    out = run_python(f"""
import os
os.environ["XLA_FLAGS"] = "--xla_dump_to={tmp_path} --xla_dump_hlo_as_text"
import glob
import numpy as np, keras, keras_optimizer
def fit(opt):
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1)])
    m.compile(optimizer=opt, loss="mse", jit_compile=True)
    x = np.random.default_rng(0).standard_normal((64, 8)).astype("float32")
    return m.fit(x, x.sum(1, keepdims=True), epochs=3, batch_size=16, verbose=0).history["loss"]
ours = fit(keras_optimizer.RMSprop(momentum=0.9))
calls = sum("rmsprop_op_apply" in open(p).read() for p in glob.glob("{tmp_path}/*.txt"))
stock = fit(keras.optimizers.RMSprop(momentum=0.9))
print("calls", calls > 0, "trains", ours[-1] < ours[0], np.allclose(ours, stock, rtol=1e-4))
""").stdout
    assert "calls True trains True True" in out


@pytest.mark.subprocess
def test_imported_after_the_first_xla_compilation_falls_back_with_a_warning():
    out = run_python("""
import warnings
import tensorflow as tf
x = tf.Variable(1.0)
tf.function(lambda: x.assign_add(1.0), jit_compile=True)()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import rmsprop_op, keras, keras_optimizer
print("kernels", sorted(rmsprop_op.XLA_KERNELS))
print("warned", any("first XLA function" in str(w.message) for w in caught))
v = keras.Variable([1.0, 2.0])
opt = keras_optimizer.RMSprop(0.1)
opt.build([v])
tf.function(lambda: opt.apply([tf.ones(2)], [v]) and None, jit_compile=True)()
print("stepped", v.numpy().tolist() != [1.0, 2.0])
""").stdout
    assert "kernels []" in out and "warned True" in out and "stepped True" in out


@pytest.mark.subprocess
def test_no_gpu_kernels_variable_keeps_the_gpu_library_out():
    out = run_python("""
from rmsprop_op import _loader
print("disabled", _loader.gpu_kernels_disabled(), _loader.load_gpu_kernels())
""", env={"RMSPROP_OP_NO_GPU_KERNELS": "1"}).stdout
    assert "disabled True False" in out
