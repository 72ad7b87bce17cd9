"""Finds and loads the compiled op libraries, once.

The CPU library (`_rmsprop_ops.so`) registers the ops and their CPU kernels
and must load. The GPU library (`_rmsprop_gpu_kernels.so`) only adds CUDA
kernels; it is loaded where it exists and TensorFlow sees a GPU, and where it
cannot load the CPU kernels still serve every op.
"""
import ctypes
import os
import re
import warnings

import tensorflow as tf

from rmsprop_op import _versions

_versions.check("TensorFlow", tf.__version__, _versions.MIN_TENSORFLOW,
                'Upgrade it with `pip install -U "tensorflow>=2.16"`.')

_HERE = os.path.dirname(os.path.abspath(__file__))
# RMSPROP_OP_LIBRARY names another build of the CPU library (`make sanitize`
# runs the tests against an instrumented one) without replacing this one.
CPU_LIBRARY = os.environ.get("RMSPROP_OP_LIBRARY") or os.path.join(_HERE, "_rmsprop_ops.so")
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


def compatible(built, installed):
    """Whether a library built against TensorFlow `built` runs with `installed`.

    TensorFlow keeps its C++ ABI within a minor release, so 2.19.0 and 2.19.1
    share a build; nightlies and release candidates match only themselves.
    """
    if _versions.is_prerelease(built) or _versions.is_prerelease(installed):
        return built == installed
    try:
        return _versions.release(built) == _versions.release(installed)
    except ValueError:
        return built == installed


def _check(path):
    if not os.path.exists(path):
        raise LibraryError(f"The rmsprop_op library {path} was not found. {_REBUILD}")
    version = built_against(path)
    if version is None:
        raise LibraryError(
            f"{path} carries no build stamp; it was not built by this project. {_REBUILD}"
        )
    if not compatible(version, tf.__version__):
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


_CUDA_STAMP = re.compile(rb"GPU kernels built for CUDA (\d+)\.(\d+);")
_MIN_COMPUTE_CAPABILITY = (8, 0)  # the oldest architecture nvcc builds for (sm_80)


def _cuda_driver_version():
    """The CUDA version the installed driver supports, e.g. 13000 for 13.0."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
        return version.value
    except OSError:
        return None


def _gpu_unsupported_reason(gpus):
    """Why the GPU library cannot run here, or None. Checked before loading:
    the CUDA runtime inside it aborts the process on a driver that is too old,
    and its kernels exist only for sm_80 and newer."""
    with open(GPU_LIBRARY, "rb") as f:
        match = _CUDA_STAMP.search(f.read())
    if match is None:
        return f"{GPU_LIBRARY} carries no CUDA build stamp"
    major, minor = int(match.group(1)), int(match.group(2))
    driver = _cuda_driver_version()
    if driver is None or driver < major * 1000 + minor * 10:
        supported = "no CUDA" if driver is None else f"CUDA {driver // 1000}.{driver % 1000 // 10}"
        return (f"the GPU kernels need a driver for CUDA {major}.{minor}; the installed driver "
                f"supports {supported}")
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability is not None and tuple(capability) < _MIN_COMPUTE_CAPABILITY:
            return f"{gpu.name} has compute capability {capability}; the kernels need 8.0 or newer"
    return None


def load_gpu_kernels():
    """Loads the CUDA kernels where they were built and a GPU is visible.

    Returns True when the GPU kernels are registered. A GPU library that is
    present but cannot run here gives a warning, never an error: the ops keep
    their CPU kernels (variables placed on a GPU then need the GPU kernels).
    """
    if not os.path.exists(GPU_LIBRARY) or not tf.test.is_built_with_cuda():
        return False
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    try:
        reason = _gpu_unsupported_reason(gpus)
        if reason is not None:
            raise LibraryError(reason)
        _load(GPU_LIBRARY)
    except LibraryError as e:
        warnings.warn(f"rmsprop_op: GPU kernels not loaded, using the CPU kernels: {e}")
        return False
    return True


ops = _load(CPU_LIBRARY)
GPU_KERNELS_LOADED = load_gpu_kernels()
