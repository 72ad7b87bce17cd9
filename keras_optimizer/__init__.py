"""A drop-in, fused `keras.optimizers.RMSprop` for TensorFlow."""
from keras_optimizer.rmsprop import RMSprop

__all__ = ["RMSprop"]
