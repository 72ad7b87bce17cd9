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


def _in_source_tree():
    # A checkout has the Makefile and the sources beside the package; an
    # installed copy (in site-packages) has neither.
    root = os.path.dirname(_HERE)
    return all(os.path.exists(os.path.join(root, name)) for name in ("Makefile", "sources.bzl"))


def rebuild_hint(source_tree=None):
    """The command that fixes the copy that was loaded."""
    if source_tree is None:
        source_tree = _in_source_tree()
    if source_tree:
        return (f"Rebuild it against the installed TensorFlow with `make build` in "
                f"{os.path.dirname(_HERE)}.")
    wanted = _versions.package_version(tf.__version__)
    return (f"Install the rmsprop-op wheel built for TensorFlow {tf.__version__} "
            f"(`pip install --force-reinstall --no-deps rmsprop_op-{wanted}-py3-none-<platform>.whl`), "
            "or rebuild the installed package from its source against this TensorFlow "
            "(`pip install --no-build-isolation --force-reinstall --no-deps <source folder>`).")


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
        raise LibraryError(f"The rmsprop_op library {path} was not found. {rebuild_hint()}")
    version = built_against(path)
    if version is None:
        raise LibraryError(
            f"{path} carries no build stamp; it was not built by this project. {rebuild_hint()}"
        )
    if not compatible(version, tf.__version__):
        raise LibraryError(
            f"{path} was built against TensorFlow {version}, but TensorFlow "
            f"{tf.__version__} is installed. {rebuild_hint()}"
        )


def _load(path):
    _check(path)
    try:
        return tf.load_op_library(path)
    except tf.errors.NotFoundError as e:
        raise LibraryError(
            f"TensorFlow could not load {path} ({e.message.strip()}). {rebuild_hint()}"
        ) from None


_CUDA_STAMP = re.compile(rb"GPU kernels built for CUDA (\d+)\.(\d+) \(([a-z0-9_ ]+)\);")


def _cuda_driver_version():
    """The CUDA version the installed driver supports, e.g. 12040 for 12.4."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
        return version.value
    except OSError:
        return None


def kernel_code_for(capability, archs):
    """How a GPU of compute `capability` (major, minor) runs kernels built
    for `archs` ("sm_80": machine code, "compute_90": PTX): "machine code"
    (for its major version and an equal or lower minor), "PTX" (compiled by
    the driver, for a GPU newer than every machine code), or None."""
    def parse(arch):
        number = int(arch.split("_")[1])
        return number // 10, number % 10

    capability = tuple(capability)
    for arch in archs:
        major, minor = parse(arch)
        if arch.startswith("sm_") and major == capability[0] and minor <= capability[1]:
            return "machine code"
    if any(arch.startswith("compute_") and parse(arch) <= capability for arch in archs):
        return "PTX"
    return None


def gpu_support_problem(stamp, driver, capabilities):
    """Why GPU kernels with build `stamp` (the bytes of the library) cannot
    run with a driver for CUDA `driver` (e.g. 12040; None: no driver) on GPUs
    of `capabilities` ({name: (major, minor)}), or None when they can.

    Machine code built with CUDA 12.x runs on any driver for CUDA 12; PTX is
    compiled by the driver, which must then know that CUDA release."""
    match = _CUDA_STAMP.search(stamp)
    if match is None:
        return f"{GPU_LIBRARY} carries no CUDA build stamp"
    major, minor = int(match.group(1)), int(match.group(2))
    archs = match.group(3).decode().split()

    def named(version):
        return f"CUDA {version // 1000}.{version % 1000 // 10}"

    if driver is None or driver < major * 1000:
        supported = "no CUDA" if driver is None else named(driver)
        return (f"the GPU kernels need a driver for CUDA {major}.0 or newer; the installed "
                f"driver supports {supported}")
    for name, capability in capabilities.items():
        code = kernel_code_for(capability, archs)
        if code is None:
            return (f"{name} has compute capability {capability[0]}.{capability[1]}; the GPU "
                    f"kernels are built for {', '.join(archs)}")
        if code == "PTX" and driver < major * 1000 + minor * 10:
            return (f"{name} (compute capability {capability[0]}.{capability[1]}) runs the "
                    f"kernels' PTX, which needs a driver for CUDA {major}.{minor}; the "
                    f"installed driver supports {named(driver)}")
    return None


def _gpu_unsupported_reason(gpus):
    """gpu_support_problem for this machine's driver and GPUs; checked
    before loading, so that a library that cannot run is never loaded."""
    with open(GPU_LIBRARY, "rb") as f:
        stamp = f.read()
    capabilities = {}
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability is not None:
            capabilities[gpu.name] = tuple(capability)
    return gpu_support_problem(stamp, _cuda_driver_version(), capabilities)


# Set to 1, this keeps the GPU library unloaded: variables on a GPU then
# take the plain-TensorFlow formula, with and without XLA.
NO_GPU_KERNELS_VARIABLE = "RMSPROP_OP_NO_GPU_KERNELS"


def gpu_kernels_disabled():
    return os.environ.get(NO_GPU_KERNELS_VARIABLE, "").strip() not in ("", "0")


def load_gpu_kernels():
    """Loads the CUDA kernels where they were built and a GPU is visible,
    unless $RMSPROP_OP_NO_GPU_KERNELS is set.

    Returns True when the GPU kernels are registered. A GPU library that is
    present but cannot run here gives a warning, never an error: the ops keep
    their CPU kernels, and the optimizers update variables placed on a GPU
    with the plain-TensorFlow formula (rmsprop_op.plain_tf).
    """
    if (gpu_kernels_disabled() or not os.path.exists(GPU_LIBRARY)
            or not tf.test.is_built_with_cuda()):
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
        warnings.warn(f"rmsprop_op: GPU kernels not loaded: {e}")
        return False
    return True


def xla_kernels(cpu_library, gpu_library=None):
    """The device types ("CPU", "GPU") on which XLA can compile our ops, as
    the loaded libraries report (cc/kernels/xla/); warns when they were
    loaded too late for XLA to take their kernels."""
    states = {"CPU": ctypes.CDLL(cpu_library).rmsprop_op_xla_kernels()}
    if gpu_library is not None:
        states["GPU"] = ctypes.CDLL(gpu_library).rmsprop_op_gpu_xla_kernels()
    if min(states.values()) < 0:
        warnings.warn(
            "rmsprop_op: imported after TensorFlow compiled its first XLA function, so XLA "
            "cannot compile the fused ops in this process: inside jit_compile=True the "
            "optimizers use the same formula in plain TensorFlow ops. Import keras_optimizer "
            "(or rmsprop_op) before the first jit_compile=True function runs.",
            RuntimeWarning, stacklevel=2)
    return frozenset(device for device, state in states.items() if state > 0)


ops = _load(CPU_LIBRARY)
BUILT_AGAINST = built_against(CPU_LIBRARY)
GPU_KERNELS_LOADED = load_gpu_kernels()
XLA_KERNELS = xla_kernels(CPU_LIBRARY, GPU_LIBRARY if GPU_KERNELS_LOADED else None)
