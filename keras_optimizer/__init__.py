"""A drop-in, fused `keras.optimizers.RMSprop` for TensorFlow."""
from keras_optimizer import _quiet_start

if _quiet_start.running_the_demo():
    _quiet_start.start_tensorflow_quietly()

from rmsprop_op import __version__
from rmsprop_op._versions import UnsupportedVersion

try:
    from keras_optimizer.rmsprop import RMSprop
except UnsupportedVersion as _unsupported:
    # Keras 3 is too old (or is Keras 2): keras_optimizer.legacy, for
    # tf_keras, still works; RMSprop raises the reason where it is used.
    _reason = _unsupported

    def __getattr__(name):
        if name == "RMSprop":
            raise UnsupportedVersion(str(_reason))
        raise AttributeError(f"module 'keras_optimizer' has no attribute {name!r}")

__all__ = ["RMSprop", "__version__"]
