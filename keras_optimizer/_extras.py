"""Keras's steps around the update, as arguments of the grouped op.

Keras 3 unscales the gradients by `loss_scale_factor`, clips them
(`clipnorm`, `global_clipnorm` or `clipvalue`), decays the weights
(`weight_decay`) and updates their moving average (`use_ema`), each a pass
over every variable. `configured` reads them from the optimizer;
`op_arguments` computes the scalars `FusedResourceGroupApplyRMSProp` takes
for them exactly as Keras computes them, in the variable's dtype, so the
op's results are Keras's.
"""
import collections

import numpy as np
import tensorflow as tf

import rmsprop_op
from keras_optimizer import _compat

Extras = collections.namedtuple(
    "Extras", "loss_scale clipnorm global_clipnorm clipvalue weight_decay use_ema ema_momentum")


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


def op_arguments(optimizer, extras, grads, variables):
    """Yields (positions, arguments) for the variables of one dtype: the
    positions in `variables` that one grouped op updates (one op per
    weight-decay choice) and its keyword arguments for `extras`. Clipping by
    norm takes one norms op over all of `grads`, made before the first yield.
    """
    dtype = variables[0].dtype
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
        arguments = dict(common)
        if clip_divisors is not None:
            arguments["clip_divisors"] = tf.gather(clip_divisors, positions)
        if decay:
            # tf.cast(weight_decay, dtype) goes through float32 first.
            arguments["weight_decay"] = _in_dtype(_in_dtype(extras.weight_decay, tf.float32),
                                                  dtype)
        if extras.use_ema:
            arguments["emas"] = [_compat.ema_slot(optimizer, variables[i]) for i in positions]
        yield positions, arguments


def at_positions(arguments, positions, n):
    """The grouped op's extras `arguments` (of `op_arguments`) for the
    variables at `positions` of the n it was made for."""
    if len(positions) == n:
        return arguments
    out = dict(arguments)
    if out.get("emas") is not None:
        out["emas"] = [out["emas"][i] for i in positions]
    if out.get("clip_divisors") is not None:
        out["clip_divisors"] = tf.gather(out["clip_divisors"], positions)
    return out
