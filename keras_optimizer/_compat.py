"""Every private or release-dependent Keras and TensorFlow API this package uses.

The optimizers reach these only through this module, and
tests/test_compat.py checks each against the installed releases, so a release
that changes one fails there, by name, rather than somewhere in a training
step.
"""
import tensorflow as tf
from tensorflow.python.ops import control_flow_util  # private: the XLA context

from rmsprop_op import _versions


def check_keras(version=None):
    """Refuses Keras 2 and Keras 3 releases below the supported window."""
    if version is None:
        import keras
        version = keras.__version__
    if _versions.release(version)[0] < 3:
        raise _versions.UnsupportedVersion(
            f"keras_optimizer.RMSprop needs Keras 3, but Keras {version} is installed "
            f"(this package supports {_versions.SUPPORTED}). For Keras 2 models use "
            "keras_optimizer.legacy.RMSprop with tf_keras.")
    _versions.check("Keras", version, _versions.MIN_KERAS,
                    'Upgrade it with `pip install -U "keras>=3.3"`.')


def check_tf_keras(version):
    _versions.check("tf_keras", version, _versions.MIN_TF_KERAS,
                    "Install the tf_keras release of your TensorFlow's minor version "
                    "(`pip install tf-keras~=2.X.0` for TensorFlow 2.X).")


def stock_default_name():
    """keras.optimizers.RMSprop's default `name`: "rmsprop" up to Keras 3.13
    (at least), None in 3.15, which the base class turns into a name unique in the
    program ("rm_sprop", "rm_sprop_1", ...)."""
    import inspect

    import keras
    return inspect.signature(keras.optimizers.RMSprop.__init__).parameters["name"].default


def compiled_by_xla():
    """True while tracing a function that XLA will compile (jit_compile=True),
    where the custom ops have no kernel."""
    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def add_slots(optimizer, var_list, name):
    """One zero-initialized optimizer variable per model variable, named as
    Keras names its own slots.

    Keras 3.10 added `add_optimizer_variables` (which gives None for variables
    that Keras overwrites with their gradient); earlier releases have only
    `add_variable_from_reference`.
    """
    if hasattr(optimizer, "add_optimizer_variables"):
        return optimizer.add_optimizer_variables(var_list, name)
    return [optimizer.add_variable_from_reference(v, name) for v in var_list]


def tf_variable(variable):
    """The tf.Variable behind a Keras variable; a tf.Variable as it is.

    Before Keras 3.9 `keras.Variable` is a subclass of the class that layers
    and optimizers create, so `isinstance(v, keras.Variable)` misses their
    variables; every Keras variable wraps a tf.Variable in `.value`.
    """
    if isinstance(variable, tf.Variable):
        return variable
    return variable.value


def variable_index(optimizer, variable):
    """The position of a model variable in the optimizer's slot lists."""
    return optimizer._get_variable_index(variable)


def keras_sums_replica_gradients():
    """False on Keras 3.3 to 3.5 (see UpdateHook)."""
    import keras
    return _versions.release(keras.__version__) >= (3, 6)


class UpdateHook:
    """Takes over the TensorFlow backend's hook that applies one step's
    gradients (`_distributed_tf_update_step`, the same from Keras 3.0 to
    today): Keras calls it once per step with every (gradient, variable)
    pair, in cross-replica context. Subclasses implement `_apply_updates`
    and may call `_per_variable_updates`, Keras's own implementation.

    Keras 3.3 to 3.5 sum the replicas' gradients inside this hook, where the
    replica context is already gone, so under a multi-replica strategy they
    are never summed and replicas drift apart, with the stock optimizer as
    with ours (Keras 3.6 sums them before the hook).
    """

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        return self._apply_updates(distribution, grads_and_vars, learning_rate)

    def _per_variable_updates(self, distribution, grads_and_vars, learning_rate):
        # One `distribution.extended.update` per variable, calling update_step.
        return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)


def optimizer_strategy(optimizer):
    """The tf.distribute strategy a Keras 3 optimizer was created under."""
    return optimizer._distribution_strategy


def trainable_variables(optimizer):
    """The variables a built Keras 3 optimizer tracks, in slot order."""
    return optimizer._trainable_variables


def uses_weight_decay(optimizer, variable):
    """False for variables excluded with `exclude_from_weight_decay`."""
    return optimizer._use_weight_decay(variable)


def ema_slot(optimizer, variable):
    """The tf.Variable holding `variable`'s moving average (use_ema=True)."""
    average = optimizer._model_variables_moving_average[variable_index(optimizer, variable)]
    return tf_variable(average)


class KerasStepsHook:
    """Lets the update hook do Keras's steps around the update in its fused op.

    Keras 3 unscales the gradients (`loss_scale_factor`), clips them
    (`_clip_gradients`), decays the weights (`_apply_weight_decay`) and
    updates their moving average (`_update_model_variables_moving_average`)
    as separate passes, in `apply` and `_backend_apply_gradients` (which of
    the two moved in Keras 3.6). While `_fused_extras` is set, for one `apply`
    whose steps the subclass's `_plan_fused_extras` says it can fuse, those
    steps are skipped here and the subclass's update hook does them, reading
    the snapshot. Everything else (constraints, the EMA overwrite, the
    iteration count) stays Keras's.
    """

    _fused_extras = None

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is not None:
            # Keras takes any iterable; planning must not consume it.
            trainable_variables = list(trainable_variables)
        extras = self._plan_fused_extras(grads, trainable_variables)
        if extras is None:
            return super().apply(grads, trainable_variables)
        scale = self.loss_scale_factor
        self._fused_extras, self.loss_scale_factor = extras, None
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._fused_extras, self.loss_scale_factor = None, scale

    def _clip_gradients(self, grads):
        if self._fused_extras is not None:
            return grads
        return super()._clip_gradients(grads)

    def _apply_weight_decay(self, variables):
        if self._fused_extras is None:
            super()._apply_weight_decay(variables)

    def _update_model_variables_moving_average(self, trainable_variables):
        if self._fused_extras is None:
            super()._update_model_variables_moving_average(trainable_variables)
