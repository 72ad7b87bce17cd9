"""Which implementation of the update a variable gets: the fused ops, or the
same formula in plain TensorFlow (rmsprop_op.plain_tf) where they cannot run.
Both optimizers ask here, so they fall back alike."""
import warnings

import tensorflow as tf

import rmsprop_op
from keras_optimizer import _compat
from rmsprop_op import _loader, compact_state, plain_tf

_warned = False


def device_type(variable):
    """"CPU", "GPU", ... or None where `variable` has no device yet."""
    device = getattr(variable, "device", "") or ""
    return tf.DeviceSpec.from_string(device).device_type


def on_gpu(variable):
    """True when `variable` lives on a GPU."""
    return device_type(variable) == "GPU"


def _warn_gpu_fallback():
    global _warned
    if not _warned:
        _warned = True
        why = (f"${_loader.NO_GPU_KERNELS_VARIABLE} is set" if _loader.gpu_kernels_disabled()
               else "see the warning of rmsprop_op when it was imported")
        warnings.warn(
            f"rmsprop_op: the GPU kernels are not loaded ({why}), so variables on a GPU are "
            "updated by the same formula in plain TensorFlow ops: the same results, without "
            "the fused kernels' speed.",
            RuntimeWarning, stacklevel=3)


def ops_for(variable, slots=()):
    """rmsprop_op, or rmsprop_op.plain_tf: inside XLA on a device where XLA
    cannot compile our ops or with compact slots, for a variable on a GPU without the GPU kernels
    (with one warning per process), and for a variable with a slot on
    another device (Keras puts slots built inside a tf.function on the
    default device; no op takes resources of two)."""
    if not rmsprop_op.GPU_KERNELS_LOADED and on_gpu(variable):
        _warn_gpu_fallback()
        return plain_tf
    if _compat.compiled_by_xla() and (device_type(variable) not in rmsprop_op.XLA_KERNELS
                                      or any(compact_state.is_compact(s) for s in slots)):
        return plain_tf  # (the ops with compact slots have no XLA kernels)
    if any(slot is not None and slot.device != variable.device for slot in slots):
        return plain_tf
    return rmsprop_op


def fused_kernels_for(variables, slots=None):
    """True when the fused ops can update every one of `variables` (the
    grouped op needs all of them); `slots`: one tuple of slots per variable."""
    slots = [()] * len(variables) if slots is None else slots
    return all(ops_for(v, s) is rmsprop_op for v, s in zip(variables, slots))
