"""Which implementation of the update a variable gets: the fused ops, or the
same formula in plain TensorFlow (rmsprop_op.plain_tf) where they cannot run.
Both optimizers ask here, so they fall back alike."""
import warnings

import tensorflow as tf

import rmsprop_op
from keras_optimizer import _compat
from rmsprop_op import plain_tf

_warned = False


def on_gpu(variable):
    """True when `variable` lives on a GPU."""
    device = getattr(variable, "device", "") or ""
    return tf.DeviceSpec.from_string(device).device_type == "GPU"


def _warn_gpu_fallback():
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "rmsprop_op: the GPU kernels are not loaded (see the warning of rmsprop_op when it "
            "was imported), so variables on a GPU are updated by the same formula in plain "
            "TensorFlow ops: the same results, without the fused kernels' speed.",
            RuntimeWarning, stacklevel=3)


def ops_for(variable):
    """rmsprop_op, or rmsprop_op.plain_tf inside XLA and for a variable on a
    GPU without the GPU kernels (with one warning per process)."""
    if _compat.compiled_by_xla():
        return plain_tf
    if not rmsprop_op.GPU_KERNELS_LOADED and on_gpu(variable):
        _warn_gpu_fallback()
        return plain_tf
    return rmsprop_op


def fused_kernels_for(variables):
    """True when the fused ops can update every one of `variables` (the
    grouped op needs all of them)."""
    return all(ops_for(v) is rmsprop_op for v in variables)
