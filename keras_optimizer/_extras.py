"""Keras's steps around the update, fused into the grouped op's one pass.

Keras 3 unscales the gradients by `loss_scale_factor`, clips them
(`clipnorm`, `global_clipnorm` or `clipvalue`), decays the weights
(`weight_decay`) and updates their moving average (`use_ema`), each a pass
over every variable. `plan` says whether one `apply` can hand all of them to
`FusedResourceGroupApplyRMSProp` instead; `apply_fused` computes the scalars
the op takes exactly as Keras computes them, in the variable's dtype, so the
op's results are Keras's. Where `plan` says no, Keras's own code runs.
"""
import collections

import numpy as np
import tensorflow as tf

import rmsprop_op
from keras_optimizer import _compat
from keras_optimizer._implementation import fused_kernels_for

Extras = collections.namedtuple(
    "Extras", "loss_scale clipnorm global_clipnorm clipvalue weight_decay use_ema ema_momentum")

_FUSABLE_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _is_number(value):
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _positive_or_none(value):
    # Keras clips only for a value that is set and > 0.
    return value if value and value > 0 else None


def configured(optimizer):
    """The optimizer's extras, or None when it has none or when one of them
    is not a plain number (a tf.Variable or tensor: Keras reads it at each
    step, which its own code then does)."""
    values = (optimizer.loss_scale_factor, optimizer.clipnorm, optimizer.global_clipnorm,
              optimizer.clipvalue, optimizer.weight_decay)
    use_ema = optimizer.use_ema
    if all(v is None for v in values) and not use_ema:
        return None
    if not all(v is None or _is_number(v) for v in values):
        return None
    if use_ema and not _is_number(optimizer.ema_momentum):
        return None
    loss_scale, clipnorm, global_clipnorm, clipvalue, weight_decay = values
    extras = Extras(
        loss_scale=loss_scale,
        clipnorm=_positive_or_none(clipnorm),
        global_clipnorm=_positive_or_none(global_clipnorm),
        clipvalue=_positive_or_none(clipvalue),
        weight_decay=weight_decay,
        use_ema=bool(use_ema),
        ema_momentum=optimizer.ema_momentum,
    )
    if all(v is None for v in extras[:5]) and not extras.use_ema:
        return None
    return extras


def plan(optimizer, grads, trainable_variables):
    """The extras to fuse into this `apply`, or None to leave them to Keras:
    without a distribution strategy (Keras clips each replica's gradients
    before they are summed), outside XLA, without gradient accumulation, and
    when every gradient is a dense tensor of its variable's real dtype, the
    variables are distinct and on one device, and the fused kernels can
    update every one of them with the stock `update_step`.
    `trainable_variables` is None or a list (never a one-shot iterator)."""
    extras = configured(optimizer)
    if extras is None or optimizer.gradient_accumulation_steps:
        return None
    if tf.distribute.has_strategy() or (
            _compat.optimizer_strategy(optimizer) is not tf.distribute.get_strategy()):
        return None
    if _compat.compiled_by_xla() or not optimizer._can_group():
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


def _in_dtype(value, dtype):
    """A Python number rounded to `dtype`, as Keras's ops convert it."""
    return float(np.asarray(value, dtype=dtype.as_numpy_dtype))


def _clip_factors(extras, grads, dtype, divisor):
    """(clip_multiplier, clip_divisors) of clipnorm or global_clipnorm for
    gradients of one dtype, Keras's formulas on the fused norms."""
    if extras.clipnorm is None and extras.global_clipnorm is None:
        return 1.0, None
    squared = tf.cast(rmsprop_op.gradient_squared_norms(grads, divisor), dtype)
    if extras.clipnorm is not None:
        # tf.clip_by_norm: t * c / max(norm, c), the norm 0 where the sum is 0.
        clip_norm = tf.constant(extras.clipnorm, dtype)
        positive = squared > 0
        norm = tf.where(positive, tf.sqrt(tf.where(positive, squared, tf.ones_like(squared))),
                        squared)
        return _in_dtype(extras.clipnorm, dtype), tf.cast(tf.maximum(norm, clip_norm), tf.float64)
    # keras.optimizers clip_by_global_norm: NaN scale for a non-finite norm.
    clip_norm = extras.global_clipnorm
    use_norm = tf.sqrt(tf.reduce_sum(squared))
    scale_for_finite = clip_norm * tf.minimum(1.0 / use_norm, 1.0 / clip_norm)
    scale = scale_for_finite + (use_norm - use_norm)
    return tf.cast(scale, tf.float64), None


def apply_fused(optimizer, extras, grads_and_vars, learning_rate, update_group):
    """Applies one step's extras and updates with one norms op per dtype (for
    clipnorm / global_clipnorm) and one grouped op per dtype and weight-decay
    choice. `update_group(grads, variables, **extras_of_the_op)` runs the op."""
    by_dtype = {}
    for grad, variable in grads_and_vars:
        by_dtype.setdefault(variable.dtype, []).append((grad, variable))
    for dtype, pairs in by_dtype.items():
        grads = [g for g, _ in pairs]
        variables = [v for _, v in pairs]
        divisor = 1.0 if extras.loss_scale is None else _in_dtype(extras.loss_scale, dtype)
        clip_multiplier, clip_divisors = _clip_factors(extras, grads, dtype, divisor)
        common = dict(grad_divisor=divisor, clip_multiplier=clip_multiplier,
                      clip_value=(float("inf") if extras.clipvalue is None
                                  else _in_dtype(extras.clipvalue, dtype)))
        if extras.use_ema:
            # Keras: momentum = cast(iterations != 0) * ema_momentum, in dtype.
            first_step = tf.equal(optimizer.iterations, 0)
            common["ema_momentum"] = tf.where(first_step, tf.constant(0.0, tf.float64),
                                              _in_dtype(extras.ema_momentum, dtype))
        decayed = [extras.weight_decay is not None and _compat.uses_weight_decay(optimizer, v)
                   for v in variables]
        for decay in sorted(set(decayed)):
            positions = [i for i, d in enumerate(decayed) if d == decay]
            group = dict(common)
            if clip_divisors is not None:
                group["clip_divisors"] = tf.gather(clip_divisors, positions)
            if decay:
                # tf.cast(weight_decay, dtype) goes through float32 first.
                group["weight_decay"] = _in_dtype(_in_dtype(extras.weight_decay, tf.float32), dtype)
            if extras.use_ema:
                group["emas"] = [_compat.ema_slot(optimizer, variables[i]) for i in positions]
            update_group([grads[i] for i in positions], [variables[i] for i in positions],
                         learning_rate, **group)
