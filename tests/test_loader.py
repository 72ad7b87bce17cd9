"""The loader's errors when the library is missing, stale or foreign."""
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

import rmsprop_op
from rmsprop_op import _loader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _copy_package(tmp_path):
    target = tmp_path / "rmsprop_op"
    shutil.copytree(os.path.join(REPO, "rmsprop_op"), target,
                    ignore=shutil.ignore_patterns("cc", "__pycache__"))
    return target


def _import_in(path):
    env = dict(os.environ, PYTHONPATH=str(path), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", "import rmsprop_op"], env=env, cwd=path,
                          capture_output=True, text=True, timeout=300)


def test_library_records_the_tensorflow_it_was_built_against():
    assert _loader.built_against(_loader.CPU_LIBRARY) == tf.__version__


def test_missing_library(tmp_path):
    package = _copy_package(tmp_path)
    os.remove(package / "_rmsprop_ops.so")
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert "was not found" in result.stderr and "make build" in result.stderr


def test_library_built_against_another_tensorflow(tmp_path):
    package = _copy_package(tmp_path)
    library = package / "_rmsprop_ops.so"
    data = library.read_bytes()
    stamp = f"built against TensorFlow {tf.__version__};".encode()
    assert stamp in data
    other = "9" * len(tf.__version__)
    library.write_bytes(data.replace(stamp, f"built against TensorFlow {other};".encode()))
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert f"built against TensorFlow {other}" in result.stderr
    assert f"TensorFlow {tf.__version__} is installed" in result.stderr
    assert "make build" in result.stderr


def test_library_that_cannot_load(tmp_path):
    package = _copy_package(tmp_path)
    # Stamped, but not a shared object: dlopen fails, and the message says so.
    (package / "_rmsprop_ops.so").write_bytes(
        f"rmsprop_op built against TensorFlow {tf.__version__};".encode())
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert "could not load" in result.stderr and "make build" in result.stderr
    assert "Segmentation" not in result.stderr


def test_gpu_kernels_absent_means_cpu_only():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    assert rmsprop_op.GPU_KERNELS_LOADED is False


@pytest.mark.skipif(not os.path.exists(_loader.GPU_LIBRARY), reason="GPU library not built")
def test_gpu_library_refused_on_a_driver_too_old(monkeypatch):
    """The static CUDA runtime inside would abort the process: refuse first."""
    monkeypatch.setattr(_loader, "_cuda_driver_version", lambda: 12040)
    reason = _loader._gpu_unsupported_reason([])
    assert "driver" in reason and "CUDA 13" in reason
    monkeypatch.setattr(_loader, "_cuda_driver_version", lambda: None)
    assert "driver" in _loader._gpu_unsupported_reason([])
    monkeypatch.setattr(_loader, "_cuda_driver_version", lambda: 99999)
    assert _loader._gpu_unsupported_reason([]) is None
