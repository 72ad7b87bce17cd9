"""keras_optimizer.legacy.RMSprop: tf_keras's (Keras 2) legacy RMSprop on the fused ops.

Importing this module imports tf_keras; `import keras_optimizer` alone does not.
"""
import numpy as np
import tensorflow as tf
import tf_keras

from keras_optimizer import _compat
from keras_optimizer._implementation import ops_for

_compat.check_tf_keras(tf_keras.__version__)

__all__ = ["RMSprop"]


def _coefficient_dtype(var_dtype):
    # The stock optimizer forms its coefficients (lr, rho, 1 - rho, epsilon)
    # in the variable's dtype; doing the same for float32 and float64 gives
    # its exact values. Half-precision variables are computed in float32 by
    # the op, so their coefficients are not first rounded to 16 bits; complex
    # ones have real coefficients of their real dtype.
    return tf.float64 if var_dtype.real_dtype == tf.float64 else tf.float32


@tf_keras.saving.register_keras_serializable(package="keras_optimizer.legacy", name="RMSprop")
class RMSprop(_compat.LegacyHooks, tf_keras.optimizers.legacy.Optimizer):
    """Optimizer that implements the RMSprop algorithm with fused update ops.

    A drop-in replacement for `tf_keras.optimizers.legacy.RMSprop` (what
    `tf.keras.optimizers.legacy.RMSprop` is under `TF_USE_LEGACY_KERAS=1`):
    same arguments, same slots (`rms`, `momentum` when momentum > 0, `mg` when
    centered) and the same config, so checkpoints and configs move between
    the two. Each variable is updated by one fused op. Sparse gradients
    (`tf.IndexedSlices`, e.g. from `Embedding`) update only the rows in the
    batch, duplicates summed first, with or without momentum.

    The formula is the stock optimizer's: with momentum, epsilon inside the
    square root (`step = lr * g / sqrt(ms + epsilon)`, as TensorFlow's
    training ops compute it); without momentum, after it
    (`step = lr * g / (sqrt(ms) + epsilon)`). One difference is by design:
    on sparse gradients without momentum the stock optimizer decays the
    accumulators of every row, ours only those of the rows in the batch, as
    with momentum.

    Args:
        learning_rate: A float, a
            `tf_keras.optimizers.schedules.LearningRateSchedule`, or a callable
            that takes no arguments. Defaults to `0.001`.
        rho: Discounting factor for the old gradients. Defaults to 0.9.
        momentum: If not 0.0, the optimizer tracks the momentum value.
            Defaults to 0.0.
        epsilon: Small constant for numerical stability: added inside the
            square root with momentum, to it without. Defaults to 1e-7.
        centered: If True, gradients are normalized by the estimated variance
            of the gradient. Defaults to False.
        name: Name prefix of the operations. Defaults to `"RMSprop"`.
        **kwargs: the keywords of `tf_keras.optimizers.legacy.Optimizer`
            (`clipnorm`, `clipvalue`, `global_clipnorm`, `decay`, `lr`).

    Example:

    >>> opt = RMSprop(learning_rate=0.1)
    >>> var1 = tf.Variable(10.0)
    >>> loss = lambda: (var1 ** 2) / 2.0    # d(loss) / d(var1) = var1
    >>> step_count = opt.minimize(loss, [var1]).numpy()
    >>> var1.numpy()
    9.683772
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        name="RMSprop",
        **kwargs,
    ):
        if "state_dtype" in kwargs or "stochastic_rounding" in kwargs:
            # tf_keras's add_slot makes every slot in its variable's dtype.
            raise TypeError("Compact optimizer state (state_dtype, stochastic_rounding) is an "
                            "argument of keras_optimizer.RMSprop (Keras 3) only: tf_keras "
                            "creates every slot in its variable's dtype.")
        super().__init__(name, **kwargs)
        _compat.legacy_set_hyper(self, "learning_rate", kwargs.get("lr", learning_rate))
        _compat.legacy_set_hyper(self, "decay", _compat.legacy_initial_decay(self))
        _compat.legacy_set_hyper(self, "rho", rho)

        # Same rule as the stock optimizer: a tensor or callable momentum may
        # become non-zero later, so it gets a slot.
        self._momentum = isinstance(momentum, tf.Tensor) or callable(momentum) or momentum > 0
        if isinstance(momentum, (int, float)) and (momentum < 0 or momentum > 1):
            raise ValueError(
                "`momentum` must be between [0, 1]. Received: "
                f"momentum={momentum} (of type {type(momentum)})."
            )
        _compat.legacy_set_hyper(self, "momentum", momentum)

        self.epsilon = epsilon or tf_keras.backend.epsilon()
        self.centered = centered

    def _create_slots(self, var_list):
        # Names and order of tf_keras.optimizers.legacy.RMSprop's slots, so
        # that checkpoints and get_weights/set_weights move between the two.
        for var in var_list:
            self.add_slot(var, "rms")
        if self._momentum:
            for var in var_list:
                self.add_slot(var, "momentum")
        if self.centered:
            for var in var_list:
                self.add_slot(var, "mg")

    def _prepare_local(self, var_device, var_dtype, apply_state):
        dtype = _coefficient_dtype(var_dtype)
        momentum = (tf.identity(_compat.legacy_hyper(self, "momentum", dtype)) if self._momentum
                    else 0.0)
        apply_state[(var_device, var_dtype)].update(
            dict(
                lr=tf.identity(_compat.legacy_decayed_lr(self, dtype)),
                rho=tf.identity(_compat.legacy_hyper(self, "rho", dtype)),
                momentum=momentum,
                epsilon=tf.convert_to_tensor(self.epsilon, dtype),
            )
        )

    def _coefficients(self, var, apply_state):
        coefficients = _compat.legacy_coefficients(self, apply_state, var.device,
                                                   var.dtype.base_dtype)
        hyper = {k: coefficients[k] for k in ("lr", "rho", "momentum", "epsilon")}
        # Where the stock optimizer puts epsilon: its momentum path runs
        # TensorFlow's training ops, its plain path divides by sqrt(ms) + eps.
        hyper["epsilon_after_sqrt"] = not self._momentum
        return hyper

    def _slot_variables(self, var):
        """(ms, mg, mom) of `var`; mg / mom None when absent."""
        ms = self.get_slot(var, "rms")
        mg = self.get_slot(var, "mg") if self.centered else None
        mom = self.get_slot(var, "momentum") if self._momentum else None
        return ms, mg, mom

    def _update(self, grad, var, indices, apply_state):
        ms, mg, mom = self._slot_variables(var)
        ops = ops_for(var, (ms, mg, mom))
        return ops.update(var, ms, grad, mg=mg, mom=mom, indices=indices,
                          use_locking=_compat.legacy_use_locking(self),
                          **self._coefficients(var, apply_state))

    def _resource_apply_dense(self, grad, var, apply_state=None):
        return self._update(grad, var, None, apply_state)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        return self._update(grad, var, indices, apply_state)

    def set_weights(self, weights):
        # As the stock optimizer: weights saved by a TF1-era optimizer lack
        # the leading iteration count.
        params = self.weights
        if len(params) == len(weights) + 1:
            weights = [np.array(0)] + list(weights)
        super().set_weights(weights)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "learning_rate": _compat.legacy_serialized_hyper(self, "learning_rate"),
                "decay": _compat.legacy_initial_decay(self),
                "rho": _compat.legacy_serialized_hyper(self, "rho"),
                "momentum": _compat.legacy_serialized_hyper(self, "momentum"),
                "epsilon": self.epsilon,
                "centered": self.centered,
            }
        )
        return config
