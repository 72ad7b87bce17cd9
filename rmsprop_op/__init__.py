"""Fused RMSProp updates of TensorFlow resource variables.

`update` is the one entry point; the four named functions are thin names
over it, and `group_apply_rmsprop` updates many variables in one op. Each
updates `var` and its slots in place, in one pass, and returns the op (in a
`tf.function`) or None (eagerly). Hyperparameters are Python
numbers or scalar tensors; `mom=None` means no momentum slot, and then
`momentum` must be 0. `epsilon_after_sqrt=True` divides by sqrt(ms) + epsilon
instead of sqrt(ms + epsilon), as tf_keras's RMSprop does without momentum.
See README.md for the exact formula.
"""
import tensorflow as tf

from rmsprop_op import _loader, _versions, compact_state, plain_tf
from rmsprop_op._hyperparameters import as_float64 as _float64

__all__ = [
    "__version__",
    "BUILT_AGAINST_TENSORFLOW",
    "update",
    "apply_rmsprop",
    "apply_centered_rmsprop",
    "sparse_apply_rmsprop",
    "sparse_apply_centered_rmsprop",
    "group_apply_rmsprop",
    "gradient_squared_norms",
    "GPU_KERNELS_LOADED",
    "XLA_KERNELS",
]

GPU_KERNELS_LOADED = _loader.GPU_KERNELS_LOADED
# The device types ("CPU", "GPU") where XLA compiles the ops into custom calls
# of our kernels (jit_compile=True); elsewhere XLA cannot compile them.
XLA_KERNELS = _loader.XLA_KERNELS
# The TensorFlow the loaded library was built against (its build stamp), and
# the version with that TensorFlow minor, e.g. "0.2.0+tf2.21", as pip shows it.
BUILT_AGAINST_TENSORFLOW = _loader.BUILT_AGAINST
__version__ = _versions.package_version(BUILT_AGAINST_TENSORFLOW)
_ops = _loader.ops

# Updates, like TensorFlow's training ops: nothing to differentiate.
for _name in (
    "FusedResourceApplyRMSProp",
    "FusedResourceApplyCenteredRMSProp",
    "FusedResourceSparseApplyRMSProp",
    "FusedResourceSparseApplyCenteredRMSProp",
    "FusedResourceGroupApplyRMSProp",
    "FusedResourceApplyCompactRMSProp",
    "FusedResourceApplyCenteredCompactRMSProp",
    "FusedResourceSparseApplyCompactRMSProp",
    "FusedResourceSparseApplyCenteredCompactRMSProp",
    "FusedGradientSquaredNorms",
):
    tf.no_gradient(_name)


def _handle(variable, name, index=None):
    # Called for every variable of a grouped update, eagerly too: DTypes are
    # interned, so `is not` checks as `!=` does, without its cost, and the
    # name is formatted only for the error.
    handle = getattr(variable, "handle", None)
    if handle is None or handle.dtype is not tf.resource:
        where = name if index is None else f"{name}[{index}]"
        raise TypeError(
            f"{where} must be a resource variable (tf.Variable or keras.Variable), "
            f"got {type(variable).__name__}"
        )
    return handle


def _momentum_slot(mom, momentum):
    if mom is not None:
        return [_handle(mom, "mom")]
    if isinstance(momentum, (int, float)) and momentum != 0:
        raise ValueError(f"momentum is {momentum} but mom is None; pass a momentum slot or momentum=0")
    return []


def _hyperparameters(lr, rho, momentum, epsilon):
    """The four scalars as float64 tensors (the ops take them in double);
    Python numbers out of range are refused as the Keras optimizers refuse them."""
    return [_float64(lr, "lr"), _float64(rho, "rho"), _float64(momentum, "momentum"),
            _float64(epsilon, "epsilon")]


def update(var, ms, grad, *, mg=None, mom=None, indices=None, lr, rho, momentum=0.0, epsilon,
           use_locking=False, epsilon_after_sqrt=False):
    """One fused RMSProp update of `var` and its slots, in place: the entry
    point every other function, both optimizers and the tests use.

    `mg` (the mean gradient) makes it centered; `mom` is the momentum slot
    (without it `momentum` must be 0); `indices` makes `grad` the rows
    `indices` of a sparse gradient, duplicates summed first. The slots may
    be kept in a compact format (`rmsprop_op.compact_state`'s Int8State or
    Bfloat16State objects instead of variables).
    """
    if any(compact_state.is_compact(slot) for slot in (ms, mg, mom)):
        return _compact_update(var, ms, mg, mom, grad, indices, lr=lr, rho=rho,
                               momentum=momentum, epsilon=epsilon, use_locking=use_locking,
                               epsilon_after_sqrt=epsilon_after_sqrt)
    inputs = dict(var=_handle(var, "var"), ms=_handle(ms, "ms"),
                  mom=_momentum_slot(mom, momentum), grad=grad,
                  **_hyperparameter_inputs(lr, rho, momentum, epsilon),
                  use_locking=use_locking, epsilon_after_sqrt=epsilon_after_sqrt)
    if mg is not None:
        inputs["mg"] = _handle(mg, "mg")
    if indices is not None:
        inputs["indices"] = indices
    return _OPS[mg is not None, indices is not None](**inputs)


def _hyperparameter_inputs(lr, rho, momentum, epsilon):
    return dict(zip(("lr", "rho", "momentum", "epsilon"),
                    _hyperparameters(lr, rho, momentum, epsilon)))


def _extras_inputs(ema_momentum=0.0, grad_divisor=1.0, clip_multiplier=1.0, clip_divisors=None,
                   clip_value=float("inf"), weight_decay=None):
    """The extras' inputs of the grouped op and the dense compact ops (see
    group_apply_rmsprop); the defaults leave the update as it is."""
    if clip_divisors is None:
        clip_divisors = tf.zeros([0], tf.float64)
    return dict(
        grad_divisor=_float64(grad_divisor, "grad_divisor"),
        clip_multiplier=_float64(clip_multiplier, "clip_multiplier"),
        clip_divisors=_float64(clip_divisors, "clip_divisors"),
        clip_value=_float64(clip_value, "clip_value"),
        weight_decay=_float64(0.0 if weight_decay is None else weight_decay, "weight_decay"),
        ema_momentum=_float64(ema_momentum, "ema_momentum"),
        apply_weight_decay=weight_decay is not None)


def _compact_update(var, ms, mg, mom, grad, indices, *, lr, rho, momentum, epsilon, use_locking,
                    epsilon_after_sqrt, ema=None, **extras):
    """`update` of a variable with compact slots; for a dense gradient, with
    the grouped op's extras (`ema` its EMA slot, clip_divisors of 0 or 1
    value) in the same op."""
    slots = [s for s in (ms, mg, mom) if s is not None]
    hyper = dict(lr=lr, rho=rho, momentum=momentum, epsilon=epsilon, use_locking=use_locking,
                 epsilon_after_sqrt=epsilon_after_sqrt)
    if not _fused_compact(var, slots):
        if indices is None and (ema is not None or extras):
            return plain_tf.group_apply_rmsprop(
                [var], None if mg is None else [mg], [ms], None if mom is None else [mom],
                [grad], emas=None if ema is None else [ema], **hyper, **extras)
        return plain_tf.update(var, ms, grad, mg=mg, mom=mom, indices=indices, **hyper)
    if mom is None:
        _momentum_slot(None, momentum)

    def state(slot, name):  # each slot is its state variables; the op is told their format
        return [_handle(v, name) for v in slot.variables]
    inputs = dict(var=_handle(var, "var"), ms=state(ms, "ms"),
                  mom=[] if mom is None else state(mom, "mom"), grad=grad,
                  **_hyperparameter_inputs(lr, rho, momentum, epsilon),
                  use_locking=use_locking, epsilon_after_sqrt=epsilon_after_sqrt,
                  state_format=ms.kind)
    if mg is not None:
        inputs["mg"] = state(mg, "mg")
    if indices is not None:
        inputs["indices"] = indices
    else:
        inputs.update(_extras_inputs(**extras), ema=[] if ema is None else [_handle(ema, "ema")])
    return _COMPACT_OPS[mg is not None, indices is not None](**inputs)


# (centered, sparse) -> op.
_OPS = {
    (False, False): _ops.fused_resource_apply_rms_prop,
    (True, False): _ops.fused_resource_apply_centered_rms_prop,
    (False, True): _ops.fused_resource_sparse_apply_rms_prop,
    (True, True): _ops.fused_resource_sparse_apply_centered_rms_prop,
}


# (centered, sparse) -> the op with compact slots.
_COMPACT_OPS = {
    (False, False): _ops.fused_resource_apply_compact_rms_prop,
    (True, False): _ops.fused_resource_apply_centered_compact_rms_prop,
    (False, True): _ops.fused_resource_sparse_apply_compact_rms_prop,
    (True, True): _ops.fused_resource_sparse_apply_centered_compact_rms_prop,
}


def _fused_compact(var, slots):
    """Whether the fused op takes these compact slots: all of one kind,
    rounded to nearest (stochastic rounding stays in plain TF), a float32
    variable on a device with our kernels (CPU, or GPU when they are loaded),
    dense or sparse. (These ops have no XLA kernels: inside XLA, call
    plain_tf.update.)"""
    kind = getattr(slots[0], "kind", None)
    if not all(compact_state.is_compact(s) and s.kind == kind for s in slots):
        return False
    if any(getattr(s, "noise_seed", None) is not None for s in slots):
        return False
    if var.dtype != tf.float32:
        return False
    device = tf.DeviceSpec.from_string(_handle(var, "var").device or "").device_type
    return device in (None, "CPU") or (device == "GPU" and GPU_KERNELS_LOADED)


def apply_rmsprop(var, ms, mom, grad, lr, rho, momentum, epsilon, use_locking=False, epsilon_after_sqrt=False):
    """var -= RMSProp step for a dense `grad`; updates ms (and mom) in place."""
    return update(var, ms, grad, mom=mom, lr=lr, rho=rho, momentum=momentum, epsilon=epsilon,
                  use_locking=use_locking, epsilon_after_sqrt=epsilon_after_sqrt)


def apply_centered_rmsprop(var, mg, ms, mom, grad, lr, rho, momentum, epsilon, use_locking=False, epsilon_after_sqrt=False):
    """Centered variant: also tracks the mean gradient mg."""
    return update(var, ms, grad, mg=mg, mom=mom, lr=lr, rho=rho, momentum=momentum,
                  epsilon=epsilon, use_locking=use_locking, epsilon_after_sqrt=epsilon_after_sqrt)


def sparse_apply_rmsprop(var, ms, mom, grad, indices, lr, rho, momentum, epsilon, use_locking=False, epsilon_after_sqrt=False):
    """Row-wise update of the rows `indices` of var; duplicates are summed first."""
    return update(var, ms, grad, mom=mom, indices=indices, lr=lr, rho=rho, momentum=momentum,
                  epsilon=epsilon, use_locking=use_locking, epsilon_after_sqrt=epsilon_after_sqrt)


def sparse_apply_centered_rmsprop(var, mg, ms, mom, grad, indices, lr, rho, momentum, epsilon,
                                  use_locking=False, epsilon_after_sqrt=False):
    """Row-wise centered update; see sparse_apply_rmsprop."""
    return update(var, ms, grad, mg=mg, mom=mom, indices=indices, lr=lr, rho=rho,
                  momentum=momentum, epsilon=epsilon, use_locking=use_locking,
                  epsilon_after_sqrt=epsilon_after_sqrt)


def group_apply_rmsprop(variables, mgs, mss, moms, grads, lr, rho, momentum, epsilon, use_locking=False,
                        epsilon_after_sqrt=False, *, emas=None, ema_momentum=0.0, grad_divisor=1.0,
                        clip_multiplier=1.0, clip_divisors=None, clip_value=float("inf"),
                        weight_decay=None):
    """Dense updates of many variables of one dtype in one op.

    `mgs` is None (plain RMSProp) or one mean-gradient slot per variable;
    `moms` is None (momentum must be 0) or one momentum slot per variable.

    Keras's steps around the update run in the same pass, in Keras's order
    (real dtypes, CPU and GPU): each gradient becomes
    clip(((g / grad_divisor) * clip_multiplier) / clip_divisors[i], -clip_value, clip_value);
    with `weight_decay`, var <- var - var * weight_decay * lr before the update;
    with `emas` (one slot per variable), ema <- ema_momentum * ema + (1 - ema_momentum) * var after it.

    Slots may be in a compact format (`rmsprop_op.compact_state`): such a
    variable is updated by an op of its own, with the same steps around it.
    """
    n = len(variables)
    if n == 0:
        raise ValueError("group_apply_rmsprop needs at least one variable")
    for slots, name in ((mss, "mss"), (grads, "grads"), (mgs, "mgs"), (moms, "moms"), (emas, "emas")):
        if slots is not None and len(slots) != n:
            raise ValueError(f"{name} has {len(slots)} entries but there are {n} variables")
    if moms is None:
        _momentum_slot(None, momentum)
    hyper = dict(lr=lr, rho=rho, momentum=momentum, epsilon=epsilon, use_locking=use_locking,
                 epsilon_after_sqrt=epsilon_after_sqrt)
    extras = dict(ema_momentum=ema_momentum, grad_divisor=grad_divisor,
                  clip_multiplier=clip_multiplier, clip_value=clip_value,
                  weight_decay=weight_decay)
    compact = [i for i in range(n) if compact_state.is_compact(mss[i])]
    if compact:
        return _group_with_compact_state(compact, variables, mgs, mss, moms, grads, emas,
                                         clip_divisors, hyper, extras)
    return _ops.fused_resource_group_apply_rms_prop(
        var=[_handle(v, "variables", i) for i, v in enumerate(variables)],
        mg=[] if mgs is None else [_handle(v, "mgs", i) for i, v in enumerate(mgs)],
        ms=[_handle(v, "mss", i) for i, v in enumerate(mss)],
        mom=[] if moms is None else [_handle(v, "moms", i) for i, v in enumerate(moms)],
        ema=[] if emas is None else [_handle(v, "emas", i) for i, v in enumerate(emas)],
        grad=list(grads), **_hyperparameter_inputs(lr, rho, momentum, epsilon),
        **_extras_inputs(clip_divisors=clip_divisors, **extras),
        use_locking=use_locking,
        epsilon_after_sqrt=epsilon_after_sqrt)


def _check_group_before_any_op(variables, grads, emas):
    """The grouped op's checks of distinct variables and of shapes known
    before running, for a group that becomes several ops."""
    def refuse(message):
        raise tf.errors.InvalidArgumentError(None, None, message + "; nothing was updated")
    handles = [_handle(v, "variables", i) for i, v in enumerate(variables)]
    if len({id(h) for h in handles}) < len(handles):
        refuse("a variable is given twice: one grouped update cannot apply both")
    for i, (var, grad) in enumerate(zip(variables, grads)):
        shape = tf.TensorShape(var.shape)
        if not shape.is_compatible_with(tf.convert_to_tensor(grad).shape):
            refuse(f"grad[{i}] has shape {tf.convert_to_tensor(grad).shape} but var[{i}] has "
                   f"shape {shape}; they must match")
        if emas is not None and not shape.is_compatible_with(emas[i].shape):
            refuse(f"emas[{i}] has shape {emas[i].shape} but var[{i}] has shape {shape}; an "
                   "EMA slot must have the shape of its variable")


def _group_with_compact_state(compact, variables, mgs, mss, moms, grads, emas, clip_divisors,
                              hyper, extras):
    """group_apply_rmsprop where the variables at positions `compact` have
    compact slots: one compact op for each of them (the grouped op takes
    full-precision slots; compact state is for large variables, where one op
    more costs nothing), and one grouped op for the others. What the ops
    would refuse for one variable while another's op has run is refused
    here first, before any op is made."""
    def at(slots, positions):
        return None if slots is None else [slots[i] for i in positions]
    n = len(variables)
    _check_group_before_any_op(variables, grads, emas)
    if clip_divisors is not None:
        clip_divisors = _float64(clip_divisors, "clip_divisors")
        rank, length = clip_divisors.shape.rank, None
        if rank is not None:
            length = clip_divisors.shape[0] if rank == 1 else -1
        if length not in (None, 0, n):
            raise tf.errors.InvalidArgumentError(
                None, None, f"clip_divisors must be a vector of 0 or {n} values (one per "
                f"variable), got shape {clip_divisors.shape}; nothing was updated")
        if length == 0:
            clip_divisors = None
    ops = []
    for i in compact:
        ops.append(_compact_update(
            variables[i], mss[i], None if mgs is None else mgs[i], None if moms is None else moms[i],
            grads[i], None, ema=None if emas is None else emas[i],
            clip_divisors=None if clip_divisors is None else clip_divisors[i:i + 1],
            **hyper, **extras))
    full = [i for i in range(n) if i not in set(compact)]
    if full:
        ops.append(group_apply_rmsprop(
            at(variables, full), at(mgs, full), at(mss, full), at(moms, full), at(grads, full),
            emas=at(emas, full),
            clip_divisors=None if clip_divisors is None else tf.gather(clip_divisors, full),
            **hyper, **extras))
    ops = [op for op in ops if op is not None]
    return tf.group(ops) if ops else None


def gradient_squared_norms(grads, divisor=1.0):
    """A float64 vector: the sum of squares of each of `grads` (one dtype:
    half, bfloat16, float32 or float64), every element divided by `divisor`
    first, in one op that reads each gradient once."""
    grads = list(grads)
    if not grads:
        raise ValueError("gradient_squared_norms needs at least one gradient")
    return _ops.fused_gradient_squared_norms(grad=grads, divisor=_float64(divisor, "divisor"))
