"""Finds and loads the compiled op libraries, once.

The CPU library (`_rmsprop_ops.so`) registers the ops and their CPU kernels
and must load. The GPU library (`_rmsprop_gpu_kernels.so`) only adds CUDA
kernels; it is loaded where it exists and TensorFlow sees a GPU, and where it
cannot load the CPU kernels still serve every op.
"""
import os
import re
import warnings

import tensorflow as tf

_HERE = os.path.dirname(os.path.abspath(__file__))
CPU_LIBRARY = os.path.join(_HERE, "_rmsprop_ops.so")
GPU_LIBRARY = os.path.join(_HERE, "_rmsprop_gpu_kernels.so")
_STAMP = re.compile(rb"rmsprop_op built against TensorFlow ([^;\x00]+);")
_REBUILD = (
    "Rebuild it against the installed TensorFlow with `make build` in the "
    "source tree, or reinstall the package with `pip install --no-build-isolation .`."
)


class LibraryError(ImportError):
    """The op library is missing, stale, or cannot be loaded."""


def built_against(path):
    """The TensorFlow version a library was built against, read from its bytes."""
    with open(path, "rb") as f:
        match = _STAMP.search(f.read())
    return match.group(1).decode() if match else None


def _check(path):
    if not os.path.exists(path):
        raise LibraryError(f"The rmsprop_op library {path} was not found. {_REBUILD}")
    version = built_against(path)
    if version is None:
        raise LibraryError(
            f"{path} carries no build stamp; it was not built by this project. {_REBUILD}"
        )
    if version != tf.__version__:
        raise LibraryError(
            f"{path} was built against TensorFlow {version}, but TensorFlow "
            f"{tf.__version__} is installed. {_REBUILD}"
        )


def _load(path):
    _check(path)
    try:
        return tf.load_op_library(path)
    except tf.errors.NotFoundError as e:
        raise LibraryError(
            f"TensorFlow could not load {path} ({e.message.strip()}). {_REBUILD}"
        ) from None


def load_gpu_kernels():
    """Loads the CUDA kernels where they were built and a GPU is visible.

    Returns True when the GPU kernels are registered. A GPU library that is
    present but cannot load gives a warning, never an error: the CPU kernels
    still run every op.
    """
    if not os.path.exists(GPU_LIBRARY) or not tf.test.is_built_with_cuda():
        return False
    if not tf.config.list_physical_devices("GPU"):
        return False
    try:
        _load(GPU_LIBRARY)
    except LibraryError as e:
        warnings.warn(f"rmsprop_op: GPU kernels not loaded, using the CPU kernels: {e}")
        return False
    return True


ops = _load(CPU_LIBRARY)
GPU_KERNELS_LOADED = load_gpu_kernels()
