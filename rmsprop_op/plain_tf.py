"""The same updates written in plain TensorFlow ops.

For graphs that XLA compiles (`jit_compile=True`), where the custom ops have
no XLA kernel. `update` and `group_apply_rmsprop` have the signatures and
semantics of those in `rmsprop_op`; the formula mirrors rmsprop_op/cc/kernels/common/rmsprop_math.h line
for line, computing half-precision variables in float32 and rounding once.
Complex variables follow TensorFlow's complex ops (g^2 = g*g, principal
root), which round as the kernels' complex arithmetic does to a few ulps.
Sparse updates touch only the named rows, duplicates summed first.
"""
import tensorflow as tf

from rmsprop_op import compact_state
from rmsprop_op._hyperparameters import check_named


def _compute_dtype(dtype):
    if dtype.is_complex or dtype == tf.float64:
        return dtype
    return tf.float32


def _float64(x):
    # dtype_hint: a Python 0.9 must not pass through float32 on its way.
    return tf.cast(tf.convert_to_tensor(x, dtype_hint=tf.float64), tf.float64)


def _formula(var, ms, mg, mom, g, lr, rho, momentum, epsilon, epsilon_after_sqrt):
    """rmsprop_math::UpdateElement without the extras, on tensors in the compute dtype.
    Returns the new (var, ms, mg, mom); mg / mom None when absent."""
    c = g.dtype
    lr, rho, momentum, epsilon = (_float64(x) for x in (lr, rho, momentum, epsilon))
    one_minus_rho = tf.cast(1.0 - rho, c)
    lr, rho = tf.cast(lr, c), tf.cast(rho, c)
    ms = rho * ms + one_minus_rho * (g * g)
    epsilon = tf.cast(epsilon, c)
    zero = tf.zeros([], c)
    eps_in, eps_after = (zero, epsilon) if epsilon_after_sqrt else (epsilon, zero)
    if mg is not None:
        mg = rho * mg + one_minus_rho * g
        denom = ms - mg * mg + eps_in
        if not c.is_complex:  # rmsprop_math::NonNegative
            denom = tf.where(denom < 0, tf.zeros([], c), denom)
    else:
        denom = ms + eps_in
    step = (lr * g) / (tf.sqrt(denom) + eps_after)
    if mom is not None:
        mom = tf.cast(momentum, c) * mom + step
        delta = mom
    else:
        delta = step
    return var - delta, ms, mg, mom


def _read(v, c):
    """A variable or slot in the compute dtype; a compact slot
    (rmsprop_op.compact_state) reads as float32, its variable's dtype."""
    if v is None:
        return None
    return v.read() if compact_state.is_compact(v) else tf.cast(v.read_value(), c)


def _write(v, x, touched_rows=None):
    """Stores `x`, computed in the compute dtype; a compact slot re-encodes
    (with `touched_rows`, only the blocks of those rows)."""
    if compact_state.is_compact(v):
        return v.write(x, touched_rows)
    return v.assign(tf.cast(x, v.dtype))


def _read_slots(ms, mg, mom, read):
    """The slots' values by `read`; with compact centered state, the mean
    square consistent with the mean gradient (compact_state)."""
    ms_value, mg_value, mom_value = (read(v) for v in (ms, mg, mom))
    if mg is not None and compact_state.is_compact(ms):
        ms_value = compact_state.consistent_mean_square(ms_value, mg_value)
    return ms_value, mg_value, mom_value


def _dense(var, ms, mg, mom, grad, *hyper):
    c = _compute_dtype(var.dtype)
    new = _formula(_read(var, c), *_read_slots(ms, mg, mom, lambda v: _read(v, c)),
                   tf.cast(grad, c), *hyper)
    return tf.group([_write(v, x) for v, x in zip((var, ms, mg, mom), new) if v is not None])


def _bad_index_message(position, num_rows):
    return (f"indices[{position}] is out of range: every index must be in [0, {num_rows}), "
            "the rows of var; nothing was updated")


def _check_indices(indices, num_rows):
    """The op's InvalidArgumentError for an index outside [0, num_rows),
    before anything is read or written. (XLA compiles the graph's assert
    away: there, as in TensorFlow's own XLA kernels, such rows are dropped.)"""
    indices = tf.convert_to_tensor(indices)
    bad = tf.logical_or(indices < 0, indices >= num_rows)
    # (Padded: argmax of no indices would fail.)
    position = tf.argmax(tf.pad(tf.cast(bad, tf.int32), [[0, 1]]), output_type=tf.int64)
    if tf.executing_eagerly():
        if bool(tf.reduce_any(bad)):
            raise tf.errors.InvalidArgumentError(
                None, None, _bad_index_message(int(position), int(num_rows)))
        return tf.no_op()
    # Graph mode: Assert prints each item apart (XLA cannot format strings).
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        ["an index is out of range: every index must be in [0, rows of var); nothing was "
         "updated. The first bad position, and the rows:", position, num_rows], summarize=1)


def _sparse(var, ms, mg, mom, grad, indices, *hyper):
    # Sum duplicate rows without tf.unique (which XLA cannot compile with a
    # static shape): segment-sum into the full row space, then update only
    # the touched rows and leave the others bit-for-bit as they were.
    c = _compute_dtype(var.dtype)
    num_rows = tf.shape(var, out_type=indices.dtype)[0]
    with tf.control_dependencies([_check_indices(indices, num_rows)]):
        indices = tf.identity(indices)
    summed = tf.math.unsorted_segment_sum(tf.cast(grad, c), indices, num_rows)
    touched_rows = tf.math.unsorted_segment_max(tf.ones_like(indices, tf.int32), indices,
                                                num_rows) > 0
    touched = tf.reshape(touched_rows, [-1] + [1] * (len(var.shape) - 1))
    old = [_stored(var), *_read_slots(ms, mg, mom, _stored)]
    new = _formula(*[None if x is None else tf.cast(x, c) for x in old], summed, *hyper)
    return tf.group([_write(v, tf.where(touched, x, o), touched_rows) if compact_state.is_compact(v)
                     else v.assign(tf.where(touched, tf.cast(x, v.dtype), o))
                     for v, x, o in zip((var, ms, mg, mom), new, old) if v is not None])


def _stored(v):
    # Untouched rows are written back as read (a compact slot's as float32,
    # a centered compact mean square as _read_slots reads it).
    if v is None:
        return None
    return v.read() if compact_state.is_compact(v) else v.read_value()


def update(var, ms, grad, *, mg=None, mom=None, indices=None, lr, rho, momentum=0.0, epsilon,
           use_locking=False, epsilon_after_sqrt=False):
    """rmsprop_op.update in plain TensorFlow ops."""
    del use_locking  # variable assignments in one graph are already ordered
    check_named(lr=lr, rho=rho, momentum=momentum, epsilon=epsilon)
    hyper = (lr, rho, momentum, epsilon, epsilon_after_sqrt)
    if indices is None:
        return _dense(var, ms, mg, mom, grad, *hyper)
    return _sparse(var, ms, mg, mom, grad, indices, *hyper)


def _dense_with_extras(var, ms, mg, mom, ema, grad, clip_divisor, lr, rho, momentum, epsilon,
                       epsilon_after_sqrt, grad_divisor, clip_multiplier, clip_value, weight_decay,
                       ema_momentum):
    """rmsprop_math::UpdateElement with the extras, on tensors in the compute dtype."""
    c = _compute_dtype(var.dtype)

    def real(x):
        return tf.cast(_float64(x), c)
    g = ((tf.cast(grad, c) / real(grad_divisor)) * real(clip_multiplier)) / real(clip_divisor)
    g = tf.clip_by_value(g, -real(clip_value), real(clip_value))
    v = _read(var, c)
    if weight_decay is not None:
        v = v - v * real(weight_decay) * real(lr)
    new = list(_formula(v, *_read_slots(ms, mg, mom, lambda s: _read(s, c)), g, lr, rho,
                        momentum, epsilon, epsilon_after_sqrt))
    slots = [var, ms, mg, mom]
    if ema is not None:
        m = real(ema_momentum)
        new.append(m * _read(ema, c) + (tf.ones([], c) - m) * new[0])
        slots.append(ema)
    return tf.group([_write(s, x) for s, x in zip(slots, new) if s is not None])


def group_apply_rmsprop(variables, mgs, mss, moms, grads, lr, rho, momentum, epsilon,
                        use_locking=False, epsilon_after_sqrt=False, *, emas=None, ema_momentum=0.0,
                        grad_divisor=1.0, clip_multiplier=1.0, clip_divisors=None,
                        clip_value=float("inf"), weight_decay=None):
    del use_locking
    check_named(lr=lr, rho=rho, momentum=momentum, epsilon=epsilon, ema_momentum=ema_momentum)
    n = len(variables)
    mgs = mgs if mgs is not None else [None] * n
    moms = moms if moms is not None else [None] * n
    plain = (emas is None and clip_divisors is None and weight_decay is None
             and all(isinstance(x, (int, float)) for x in (grad_divisor, clip_multiplier, clip_value))
             and (grad_divisor, clip_multiplier, clip_value) == (1.0, 1.0, float("inf")))
    if plain:
        return tf.group([_dense(v, ms, mg, mom, g, lr, rho, momentum, epsilon, epsilon_after_sqrt)
                         for v, mg, ms, mom, g in zip(variables, mgs, mss, moms, grads)])
    emas = emas if emas is not None else [None] * n
    divisors = [1.0] * n if clip_divisors is None else tf.unstack(_float64(clip_divisors), num=n)
    return tf.group([
        _dense_with_extras(v, ms, mg, mom, ema, g, d, lr, rho, momentum, epsilon,
                           epsilon_after_sqrt, grad_divisor, clip_multiplier, clip_value,
                           weight_decay, ema_momentum)
        for v, mg, ms, mom, ema, g, d in zip(variables, mgs, mss, moms, emas, grads, divisors)])


def gradient_squared_norms(grads, divisor=1.0):
    """rmsprop_op.gradient_squared_norms in plain TensorFlow ops (summed in
    float64 in TensorFlow's order)."""
    return tf.stack([
        tf.reduce_sum(tf.square(tf.cast(
            tf.cast(g, _compute_dtype(g.dtype)) / tf.cast(_float64(divisor), _compute_dtype(g.dtype)),
            tf.float64)))
        for g in grads])
