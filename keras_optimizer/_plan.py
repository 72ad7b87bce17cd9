"""What one `apply` of keras_optimizer.RMSprop does, decided once per call.

Before Keras's `apply` runs, `plan` answers the two questions every update
of the step depends on: may one grouped op update many variables at once,
and may Keras's steps around the update (see `_extras`) run inside that op
instead of as Keras's own passes. The answer is an `UpdatePlan`, a value
the update hook follows; nothing later asks again.
"""
import dataclasses
from typing import Optional

import tensorflow as tf

from keras_optimizer import _compat, _extras
from keras_optimizer._implementation import fused_kernels_for

_FUSABLE_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


@dataclasses.dataclass(frozen=True)
class UpdatePlan:
    """grouped: dense gradients of several variables of one dtype and device
    may go to one grouped op: no tf.distribute strategy (under one, every
    variable goes through its own `extended.update`) and the stock `update_step` (a subclass that
    overrides it is called once per variable, as Keras does).

    extras: Keras's steps the grouped op does in this call, or None when
    Keras does them."""
    grouped: bool
    extras: Optional[_extras.Extras] = None


def plan(optimizer, grads, trainable_variables):
    """The UpdatePlan of one `apply(grads, trainable_variables)`.
    `trainable_variables` is None or a list (never a one-shot iterator)."""
    grouped = _compat.without_strategy(optimizer) and optimizer._can_group()
    if not grouped:
        return UpdatePlan(grouped=False)
    return UpdatePlan(grouped=True,
                      extras=_fusable_extras(optimizer, grads, trainable_variables))


def _fusable_extras(optimizer, grads, trainable_variables):
    """The extras to fuse into this `apply`, or None to leave them to Keras:
    without gradient accumulation, and when every gradient is a dense tensor
    of its variable's real dtype, the variables are distinct and on one
    device, and the fused kernels can update every one of them."""
    extras = _extras.configured(optimizer)
    if extras is None or optimizer.gradient_accumulation_steps:
        return None
    if trainable_variables is None:
        if not optimizer.built:
            return None
        trainable_variables = _compat.trainable_variables(optimizer)
    if not isinstance(grads, (list, tuple)):
        return None
    variables = list(trainable_variables)
    if len(grads) != len(variables) or not variables:
        return None
    # Keras averages every trainable variable; fuse only when all get a gradient.
    if extras.use_ema and optimizer.built and len(variables) != len(
            _compat.trainable_variables(optimizer)):
        return None
    tf_variables = []
    for grad, variable in zip(grads, variables):
        if not isinstance(grad, tf.Tensor):  # None, tf.IndexedSlices, lists, NumPy arrays
            return None
        if getattr(variable, "overwrite_with_gradient", False):
            return None
        tf_variable = _compat.tf_variable(variable)
        if tf_variable.dtype not in _FUSABLE_DTYPES or grad.dtype != tf_variable.dtype:
            return None
        tf_variables.append(tf_variable)
    if not groupable(tf_variables) or not fused_kernels_for(tf_variables):
        return None
    if extras.global_clipnorm is not None and len({g.dtype for g in grads}) > 1:
        return None
    return extras


def distinct(variables):
    """False when a variable is given twice: stock applies both updates in
    turn, which one grouped op cannot."""
    return len({id(v) for v in variables}) == len(variables)


def groupable(variables):
    """True when one grouped op may update all of `variables`: distinct, and
    on one device (an op cannot take resources of several)."""
    return distinct(variables) and len({v.device for v in variables}) <= 1
