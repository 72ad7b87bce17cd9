"""Every private or release-dependent Keras, tf_keras and TensorFlow API this
package uses.

The optimizers reach these only through this module, and
tests/test_compat.py checks each against the installed releases, so a release
that changes one fails there, by name, rather than somewhere in a training
step.
"""
import contextlib

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
    where the ops need XLA kernels (rmsprop_op.XLA_KERNELS)."""
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


def add_slot_of_dtype(optimizer, reference, name, dtype, shape=None):
    """One zero-initialized optimizer variable for `reference` in `dtype`
    (and `shape`, by default the reference's), named as Keras names its
    slots: `add_variable_from_reference` would force the reference's dtype."""
    if hasattr(reference, "path"):
        name = f"{reference.path.replace('/', '_')}_{name}"
    else:
        name = f"{str(reference.name).replace('/', '_').replace(':', '_')}_{name}"
    return optimizer.add_variable(shape=reference.shape if shape is None else shape,
                                  initializer="zeros", dtype=dtype, name=name)


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
    """False on Keras 3.3 to 3.5 (see KerasHooks)."""
    import keras
    return _versions.release(keras.__version__) >= (3, 6)


def without_strategy(optimizer):
    """True when no tf.distribute strategy is in scope and the optimizer was
    created under none. Inside Keras's update hook this is the same answer as
    "is `distribution` the default strategy": Keras hands the hook the
    optimizer's strategy whenever none is in scope."""
    return (not tf.distribute.has_strategy()
            and optimizer._distribution_strategy is tf.distribute.get_strategy())


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


class KerasHooks:
    """The Keras 3 methods the optimizer takes over, each private to Keras.

    `_distributed_tf_update_step` is the TensorFlow backend's hook that
    applies one step's gradients (the same from Keras 3.0 to today): Keras
    calls it once per step with every (gradient, variable) pair, in
    cross-replica context. Here it calls the subclass's `_apply_updates`,
    which may call `_per_variable_updates`, Keras's own implementation.

    Keras 3 unscales the gradients (by `loss_scale_factor`, read in
    `apply`), clips them (`_clip_gradients`), decays the weights
    (`_apply_weight_decay`) and updates their moving average
    (`_update_model_variables_moving_average`) as separate passes, in `apply`
    and `_backend_apply_gradients` (which of the two moved in Keras 3.6).
    While an `apply` runs under a plan whose `extras` are set, Keras sees no
    loss scale and skips the other three, and the fused op does them.
    Everything else (constraints, the EMA overwrite, the iteration count)
    stays Keras's.

    Keras 3.3 to 3.5 sum the replicas' gradients inside the update hook,
    where the replica context is already gone, so under a multi-replica
    strategy they are never summed and replicas drift apart, with the stock
    optimizer as with ours (Keras 3.6 sums them before the hook).
    """

    # The plan (an UpdatePlan) of the `apply` in progress, None outside one.
    # Keras calls the methods below with its own arguments, so they find the
    # plan here; `_applying` is the one place that sets it.
    _update_plan = None

    @contextlib.contextmanager
    def _applying(self, plan):
        previous, self._update_plan = self._update_plan, plan
        try:
            yield
        finally:
            self._update_plan = previous

    def _keras_steps_fused(self):
        return self._update_plan is not None and self._update_plan.extras is not None

    @property
    def loss_scale_factor(self):
        # Keras's `apply` divides every gradient by this; under a fusing plan
        # the op divides instead.
        return None if self._keras_steps_fused() else self._loss_scale_factor

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        self._loss_scale_factor = value

    def _clip_gradients(self, grads):
        if self._keras_steps_fused():
            return grads
        return super()._clip_gradients(grads)

    def _apply_weight_decay(self, variables):
        if not self._keras_steps_fused():
            super()._apply_weight_decay(variables)

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self._keras_steps_fused():
            super()._update_model_variables_moving_average(trainable_variables)

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        return self._apply_updates(distribution, grads_and_vars, learning_rate)

    def _per_variable_updates(self, distribution, grads_and_vars, learning_rate):
        # One `distribution.extended.update` per variable, calling update_step.
        return super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)


# tf_keras (Keras 2): `tf_keras.optimizers.legacy.Optimizer` (OptimizerV2).
# Its documented subclass contract (`_create_slots`, `_resource_apply_dense`,
# `_resource_apply_sparse`, `get_config`) and `_prepare_local`, which every
# stock legacy optimizer overrides, stay in legacy.py as Keras writes them;
# tests/test_compat.py checks their signatures. Everything else is here.

class LegacyHooks:
    """The OptimizerV2 attributes the legacy optimizer overrides beyond the
    subclass contract."""

    # Lets apply_gradients pass `experimental_aggregate_gradients` (False on
    # the base class for old subclasses without that argument).
    _HAS_AGGREGATE_GRAD = True

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices, **kwargs):
        # The sparse ops sum duplicate indices themselves (in index order),
        # so the base class's tf.unique + segment sum would only cost time.
        return self._resource_apply_sparse(grad, handle, indices, **kwargs)


def legacy_set_hyper(optimizer, name, value):
    """Registers a hyperparameter (a number, tensor or callable), as `__init__`
    of every stock legacy optimizer does."""
    optimizer._set_hyper(name, value)


def legacy_hyper(optimizer, name, dtype):
    """A hyperparameter's value in `dtype` (a callable is called)."""
    return optimizer._get_hyper(name, dtype)


def legacy_serialized_hyper(optimizer, name):
    """A hyperparameter as `get_config` writes it."""
    return optimizer._serialize_hyperparameter(name)


def legacy_initial_decay(optimizer):
    """The `decay` keyword the base class read from `**kwargs`."""
    return optimizer._initial_decay


def legacy_decayed_lr(optimizer, dtype):
    """The learning rate of this step in `dtype`, schedule and `decay` applied."""
    return optimizer._decayed_lr(dtype)


def legacy_coefficients(optimizer, apply_state, device, dtype):
    """What `_prepare_local` computed for variables of `device` and `dtype`:
    from `apply_state` when apply_gradients passed one, else computed now
    (callers of `_resource_apply_*` that pass no state)."""
    return ((apply_state or {}).get((device, dtype))
            or optimizer._fallback_apply_state(device, dtype))


def legacy_use_locking(optimizer):
    """The base class's `use_locking` (always True in tf_keras)."""
    return optimizer._use_locking
