"""Checks and conversions of the scalar hyperparameters, shared by the op
wrappers and the Keras optimizers, so that both name a bad argument alike."""
import numpy as np
import tensorflow as tf


def check(name, value, minimum=None, maximum=None):
    """A ValueError naming the argument for a string, or for a number outside
    [minimum, maximum] (a value that can only give NaN or nonsense). Tensors,
    variables and callables are checked for type where they become tensors."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"`{name}` must be a number, got the string {value!r}.")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or minimum is None:
        return
    in_range = value >= minimum and (maximum is None or value <= maximum)  # False for NaN
    if not in_range:
        expected = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"`{name}` must be {expected}, got {name}={value}.")


# [minimum, maximum] of a hyperparameter given as a Python number (None: no
# bound); a negative learning rate (gradient ascent) is allowed, as in Keras.
RANGES = {"lr": (None, None), "rho": (0.0, 1.0), "momentum": (0.0, 1.0), "epsilon": (0.0, None),
          "ema_momentum": (0.0, 1.0)}


def check_named(**values):
    """check() of each argument against its range in RANGES."""
    for name, value in values.items():
        check(name, value, *RANGES[name])


def as_float64(value, name):
    """`value` (a number or a real scalar tensor) as a float64 tensor, the
    type the ops take every hyperparameter in; checked as check_named does."""
    check(name, value, *RANGES.get(name, (None, None)))
    tensor = tf.convert_to_tensor(value, dtype_hint=tf.float64, name=name)
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(f"`{name}` must be a real number or a real tensor, got a "
                        f"{tensor.dtype.name} tensor.")
    return tf.cast(tensor, tf.float64)
