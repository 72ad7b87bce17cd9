"""keras_optimizer._compat against the installed Keras and TensorFlow: every
private or release-dependent API the optimizers use still exists and still
does what they rely on. A release that changes one fails here, by name."""
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer
from keras_optimizer import _compat, _extras
from rmsprop_op import _versions
from tests.processes import run_python


def test_the_update_hook_keras_calls_still_exists_with_its_signature():
    hook = getattr(keras.optimizers.Optimizer, "_distributed_tf_update_step", None)
    assert hook is not None, "Keras no longer has _distributed_tf_update_step"
    assert list(inspect.signature(hook).parameters) == [
        "self", "distribution", "grads_and_vars", "learning_rate"]


def test_the_hook_routes_every_step_through_our_optimizer(monkeypatch):
    calls = []
    original = keras_optimizer.RMSprop._apply_updates

    def recording(self, distribution, grads_and_vars, learning_rate):
        calls.append(len(list(grads_and_vars)))
        return original(self, distribution, grads_and_vars, learning_rate)

    monkeypatch.setattr(keras_optimizer.RMSprop, "_apply_updates", recording)
    variables = [keras.Variable(np.ones(3, np.float32)), keras.Variable(np.ones(2, np.float32))]
    opt = keras_optimizer.RMSprop()
    opt.apply_gradients(zip([tf.ones(3), tf.ones(2)], variables))
    assert calls == [2]


def test_slots_are_named_as_stock_keras_names_them():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    ours = keras_optimizer.RMSprop(momentum=0.9, centered=True)
    stock = keras.optimizers.RMSprop(momentum=0.9, centered=True)
    ours.build(model.trainable_variables)
    stock.build(model.trainable_variables)
    # The optimizer's own name prefixes the paths; the rest must agree.
    strip = lambda v: v.path.split("/", 1)[-1]  # noqa: E731
    assert [strip(v) for v in ours.variables] == [strip(v) for v in stock.variables]


def test_add_slots_works_with_and_without_add_optimizer_variables():
    variables = [keras.Variable(np.ones(3, np.float32), name="a")]
    opt = keras_optimizer.RMSprop()
    with_new = _compat.add_slots(opt, variables, "first")

    class OldKeras:  # what Keras before 3.10 offers
        def add_variable_from_reference(self, variable, name):
            return opt.add_variable_from_reference(variable, name)

    with_old = _compat.add_slots(OldKeras(), variables, "second")
    assert [s.shape for s in with_new] == [s.shape for s in with_old] == [(3,)]


def test_a_slot_of_another_dtype_is_named_as_keras_names_slots():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    opt = keras_optimizer.RMSprop()
    for variable in layer.trainable_variables:
        keras_slot = opt.add_variable_from_reference(variable, "velocity")
        ours = _compat.add_slot_of_dtype(opt, variable, "velocity", "uint8")
        scales = _compat.add_slot_of_dtype(opt, variable, "velocity_scale", "float32", (1, 1))
        assert ours.path == keras_slot.path
        assert (ours.dtype, ours.shape) == ("uint8", variable.shape)
        assert (scales.dtype, scales.shape) == ("float32", (1, 1))


def test_tf_variable_of_layer_optimizer_and_plain_variables():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    opt = keras_optimizer.RMSprop()
    opt.build(layer.trainable_variables)
    plain = tf.Variable(1.0)
    for variable in layer.trainable_variables + opt.variables:
        assert isinstance(_compat.tf_variable(variable), tf.Variable)
    assert _compat.tf_variable(plain) is plain


def test_variable_index_finds_each_variable():
    variables = [keras.Variable(np.ones(n, np.float32)) for n in (1, 2, 3)]
    opt = keras_optimizer.RMSprop()
    opt.build(variables)
    assert [_compat.variable_index(opt, v) for v in variables] == [0, 1, 2]


def test_xla_context_detection():
    seen = {}

    @tf.function(jit_compile=True)
    def compiled():
        seen["compiled"] = _compat.compiled_by_xla()
        return tf.constant(0)

    @tf.function
    def traced():
        seen["traced"] = _compat.compiled_by_xla()
        return tf.constant(0)

    compiled(), traced()
    assert seen == {"compiled": True, "traced": False}
    assert _compat.compiled_by_xla() is False


def test_installed_releases_are_inside_the_window():
    assert _versions.release(tf.__version__) >= _versions.MIN_TENSORFLOW
    assert _versions.release(keras.__version__) >= _versions.MIN_KERAS
    _compat.check_keras()


@pytest.mark.parametrize("version, fragment", [
    ("3.2.1", "Keras 3.2.1 is installed"),
    ("3.0.5", "Keras 3.0.5 is installed"),
    ("2.15.0", "keras_optimizer.legacy.RMSprop"),
])
def test_keras_below_the_window_is_refused_with_the_range(version, fragment):
    with pytest.raises(ImportError) as info:
        _compat.check_keras(version)
    assert fragment in str(info.value)
    assert "Keras 3.3 or newer" in str(info.value)


def test_tf_keras_below_the_window_is_refused():
    with pytest.raises(ImportError, match="tf_keras 2.15.1 is installed"):
        _compat.check_tf_keras("2.15.1")
    _compat.check_tf_keras("2.16.0")


@pytest.mark.subprocess
def test_old_keras_leaves_the_legacy_optimizer_importable(tmp_path):
    """With Keras 3 too old, `keras_optimizer.RMSprop` raises the reason where
    it is used; the package itself (and so keras_optimizer.legacy) imports."""
    code = (
        "import keras; keras.__version__ = '3.2.1'\n"
        "import keras_optimizer\n"
        "try:\n"
        "    keras_optimizer.RMSprop\n"
        "except ImportError as e:\n"
        "    print('refused:', e)\n")
    result = run_python(code, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: Keras 3.2.1 is installed" in result.stdout


def test_the_keras_steps_the_fused_extras_take_over_still_exist():
    # KerasHooks skips these while the fused op does their work; the
    # accessors read the state Keras keeps for them.
    base = keras.optimizers.Optimizer
    for name, params in (("apply", ["self", "grads", "trainable_variables"]),
                         ("_clip_gradients", ["self", "grads"]),
                         ("_apply_weight_decay", ["self", "variables"]),
                         ("_update_model_variables_moving_average",
                          ["self", "trainable_variables"]),
                         ("_use_weight_decay", ["self", "variable"])):
        method = getattr(base, name, None)
        assert method is not None, f"Keras no longer has Optimizer.{name}"
        assert list(inspect.signature(method).parameters) == params, name
    variables = [keras.Variable(np.ones(3, np.float32), name="w")]
    opt = keras_optimizer.RMSprop(use_ema=True, loss_scale_factor=2.0, weight_decay=0.1)
    opt.build(variables)
    assert _compat.without_strategy(opt)
    assert list(_compat.trainable_variables(opt)) == variables
    assert _compat.uses_weight_decay(opt, variables[0].value)
    assert _compat.ema_slot(opt, variables[0]).shape == (3,)
    assert opt.loss_scale_factor == 2.0


def test_keras_unscales_by_reading_the_plain_loss_scale_factor_attribute():
    # KerasHooks turns `loss_scale_factor` into a property that reads None
    # while the op unscales; Keras must read the attribute in `apply` and
    # must not define it as a property of its own.
    base = keras.optimizers.Optimizer
    assert "self.loss_scale_factor" in inspect.getsource(base.apply)
    assert not any(isinstance(vars(cls).get("loss_scale_factor"), property)
                   for cls in base.__mro__)
    opt = keras_optimizer.RMSprop(loss_scale_factor=2.0)
    opt.loss_scale_factor = 8.0
    assert opt.loss_scale_factor == 8.0 and opt.get_config()["loss_scale_factor"] == 8.0


def test_keras_steps_are_skipped_only_inside_a_fused_apply():
    from keras_optimizer._plan import UpdatePlan
    variables = [keras.Variable(np.ones(3, np.float32), name="w")]
    opt = keras_optimizer.RMSprop(clipvalue=0.1, loss_scale_factor=4.0)
    opt.build(variables)
    grads = [tf.fill([3], 10.0)]
    assert float(opt._clip_gradients(grads)[0][0]) == np.float32(0.1)  # Keras clips outside apply
    extras = _extras.configured(opt)
    with opt._applying(UpdatePlan(grouped=True, extras=extras)):
        assert opt.loss_scale_factor is None
        assert opt._clip_gradients(grads) is grads
    with opt._applying(UpdatePlan(grouped=True)):  # Keras does the steps itself
        assert opt.loss_scale_factor == 4.0
    opt.apply(grads, variables)
    assert opt.loss_scale_factor == 4.0 and opt._update_plan is None  # restored


def test_without_strategy_is_the_update_hooks_default_strategy_test(monkeypatch):
    # The plan asks `_compat.without_strategy` before Keras's `apply`; the
    # hook was once asked whether its `distribution` is the default strategy.
    # Keras must hand the hook the optimizer's strategy for the two to agree.
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        variables = [keras.Variable(np.ones(3, np.float32))]
        under = keras_optimizer.RMSprop()
        under.build(variables)
    plain = keras_optimizer.RMSprop()
    seen = []
    original = keras_optimizer.RMSprop._apply_updates

    def recording(self, distribution, grads_and_vars, learning_rate):
        seen.append((_compat.without_strategy(self),
                     not tf.distribute.has_strategy()
                     and distribution is tf.distribute.get_strategy()))
        return original(self, distribution, grads_and_vars, learning_rate)

    monkeypatch.setattr(keras_optimizer.RMSprop, "_apply_updates", recording)
    plain.apply_gradients([(tf.ones(2), keras.Variable(np.ones(2, np.float32)))])
    with strategy.scope():
        strategy.run(lambda: under.apply_gradients([(tf.ones(3), variables[0])]))
    under.apply_gradients([(tf.ones(3), variables[0])])  # outside its strategy's scope
    assert seen == [(True, True), (False, False), (False, False)]
    assert not _compat.without_strategy(under)


# tf_keras (Keras 2): what keras_optimizer.legacy.RMSprop overrides or calls.

LEGACY_METHODS = (
    # the subclass contract, overridden in legacy.py
    ("_create_slots", ["self", "var_list"]),
    ("_prepare_local", ["self", "var_device", "var_dtype", "apply_state"]),
    ("_resource_apply_dense", ["self", "grad", "handle", "apply_state"]),
    ("_resource_apply_sparse", ["self", "grad", "handle", "indices", "apply_state"]),
    # overridden by _compat.LegacyHooks
    ("_resource_apply_sparse_duplicate_indices", ["self", "grad", "handle", "indices", "kwargs"]),
    ("apply_gradients", ["self", "grads_and_vars", "name", "experimental_aggregate_gradients"]),
    # called through _compat
    ("_set_hyper", ["self", "name", "value"]),
    ("_get_hyper", ["self", "name", "dtype"]),
    ("_serialize_hyperparameter", ["self", "hyperparameter_name"]),
    ("_decayed_lr", ["self", "var_dtype"]),
    ("_fallback_apply_state", ["self", "var_device", "var_dtype"]),
)


@pytest.mark.parametrize("name, params", LEGACY_METHODS, ids=[n for n, _ in LEGACY_METHODS])
def test_the_tf_keras_methods_the_legacy_optimizer_relies_on_still_exist(name, params):
    tf_keras = pytest.importorskip("tf_keras")
    method = getattr(tf_keras.optimizers.legacy.Optimizer, name, None)
    assert method is not None, f"tf_keras no longer has OptimizerV2.{name}"
    assert list(inspect.signature(method).parameters) == params, name


def test_the_tf_keras_state_the_legacy_optimizer_reads_still_exists():
    tf_keras = pytest.importorskip("tf_keras")
    base = tf_keras.optimizers.legacy.Optimizer
    assert base._HAS_AGGREGATE_GRAD is False  # what LegacyHooks overrides
    stock = tf_keras.optimizers.legacy.RMSprop(learning_rate=0.5, rho=0.75, momentum=0.25,
                                               decay=0.125)
    assert _compat.legacy_initial_decay(stock) == 0.125
    assert _compat.legacy_use_locking(stock) is True
    assert _compat.legacy_serialized_hyper(stock, "learning_rate") == 0.5
    assert float(_compat.legacy_hyper(stock, "rho", tf.float64)) == 0.75
    _compat.legacy_set_hyper(stock, "rho", 0.5)
    assert float(_compat.legacy_hyper(stock, "rho", tf.float32)) == 0.5
    assert float(_compat.legacy_decayed_lr(stock, tf.float32)) == 0.5  # iteration 0
    computed = _compat.legacy_coefficients(stock, None, "", tf.float32)
    assert float(computed["lr_t"]) == 0.5  # the stock _prepare_local's key
    given = {("", tf.float32): {"lr_t": 1.0}}
    assert _compat.legacy_coefficients(stock, given, "", tf.float32) is given[("", tf.float32)]


def test_sparse_updates_reach_the_op_with_their_duplicate_indices(monkeypatch):
    # LegacyHooks skips the base class's duplicate summing: the base class
    # must still route sparse updates through
    # _resource_apply_sparse_duplicate_indices.
    pytest.importorskip("tf_keras")
    from keras_optimizer import legacy
    seen = []
    original = legacy.RMSprop._resource_apply_sparse

    def recording(self, grad, var, indices, apply_state=None):
        seen.append(indices.numpy().tolist())
        return original(self, grad, var, indices, apply_state)

    monkeypatch.setattr(legacy.RMSprop, "_resource_apply_sparse", recording)
    var = tf.Variable(np.ones((3, 2), np.float32))
    grad = tf.IndexedSlices(tf.ones((3, 2)), tf.constant([0, 2, 0]), tf.constant([3, 2]))
    legacy.RMSprop().apply_gradients([(grad, var)])
    assert seen == [[0, 2, 0]]
