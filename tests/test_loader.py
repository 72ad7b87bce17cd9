"""The loader's errors when the library is missing, stale or foreign."""
import os
import shutil

import pytest
import tensorflow as tf

import rmsprop_op
from rmsprop_op import _loader, _versions
from tests.processes import ROOT as REPO
from tests.processes import run_python


def _copy_package(tmp_path):
    """The Python package with the library under test (RMSPROP_OP_LIBRARY's
    build where set) as its own `_rmsprop_ops.so`."""
    target = tmp_path / "rmsprop_op"
    shutil.copytree(os.path.join(REPO, "rmsprop_op"), target,
                    ignore=shutil.ignore_patterns("cc", "__pycache__", "*.so"))
    shutil.copy(_loader.CPU_LIBRARY, target / "_rmsprop_ops.so")
    return target


def _import_in(path):
    return run_python(["-c", "import rmsprop_op"], cwd=path, env=dict(
        PYTHONPATH=str(path), TF_CPP_MIN_LOG_LEVEL="3", RMSPROP_OP_LIBRARY=None))


def test_library_records_the_tensorflow_it_was_built_against():
    assert _loader.built_against(_loader.CPU_LIBRARY) == tf.__version__


def _installed_copy_hint():
    # What an installed package (no Makefile beside it) is told to run.
    return f"rmsprop_op-{_versions.package_version(tf.__version__)}-py3-none-"


@pytest.mark.subprocess
def test_missing_library_in_a_source_tree(tmp_path):
    package = _copy_package(tmp_path)
    (tmp_path / "Makefile").write_text("build:\n")
    (tmp_path / "sources.bzl").write_text("")
    os.remove(package / "_rmsprop_ops.so")
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert "was not found" in result.stderr
    assert f"`make build` in {tmp_path}" in result.stderr
    assert "pip install" not in result.stderr


@pytest.mark.subprocess
def test_missing_library_of_an_installed_package(tmp_path):
    package = _copy_package(tmp_path)
    os.remove(package / "_rmsprop_ops.so")
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert "was not found" in result.stderr and _installed_copy_hint() in result.stderr
    assert "make build" not in result.stderr


def _restamp(package, version):
    library = package / "_rmsprop_ops.so"
    data = library.read_bytes()
    stamp = f"built against TensorFlow {tf.__version__};".encode()
    assert stamp in data
    library.write_bytes(data.replace(stamp, f"built against TensorFlow {version};".encode()))


def _other_minor(version):
    major, minor = version.split(".")[:2]
    return f"{major}.{int(minor) + 50}.0"  # the check fails before any loading


@pytest.mark.subprocess
def test_library_built_against_another_tensorflow(tmp_path):
    package = _copy_package(tmp_path)
    other = _other_minor(tf.__version__)
    _restamp(package, other)
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert f"built against TensorFlow {other}" in result.stderr
    assert f"TensorFlow {tf.__version__} is installed" in result.stderr
    assert _installed_copy_hint() in result.stderr


@pytest.mark.subprocess
@pytest.mark.skipif(_versions.is_prerelease(tf.__version__), reason="a nightly matches only itself")
def test_library_built_against_another_patch_release_loads(tmp_path):
    # TensorFlow keeps its ABI within a minor: a wheel built against 2.X.0 serves 2.X.1.
    package = _copy_package(tmp_path)
    major, minor, patch = tf.__version__.split(".")[:3]
    # The same length keeps the library's bytes in place.
    other_patch = "9" * len(patch) if patch != "9" * len(patch) else "0" * len(patch)
    _restamp(package, f"{major}.{minor}.{other_patch}")
    result = _import_in(tmp_path)
    assert result.returncode == 0, result.stderr


def test_version_names_the_tensorflow_minor_of_the_library():
    built = _loader.built_against(_loader.CPU_LIBRARY)
    assert rmsprop_op.BUILT_AGAINST_TENSORFLOW == built
    assert rmsprop_op.__version__ == _versions.package_version(built)
    assert rmsprop_op.__version__.startswith(_versions.VERSION + "+tf")
    assert _versions.package_version("2.19.1") == f"{_versions.VERSION}+tf2.19"
    assert _versions.package_version("2.23.0.dev20261026") == \
        f"{_versions.VERSION}+tf2.23.0dev20261026"
    # TensorFlow's and pip's spellings of a release candidate: one label.
    assert _versions.package_version("2.22.0-rc0") == _versions.package_version("2.22.0rc0") \
        == f"{_versions.VERSION}+tf2.22.0rc0"


def test_changelog_describes_this_version():
    with open(os.path.join(REPO, "CHANGELOG.md")) as f:
        changelog = f.read()
    # Changes since the last release gather under "## Unreleased" first.
    newest = next(line for line in changelog.splitlines()
                  if line.startswith("## ") and line != "## Unreleased")
    assert newest.startswith(f"## {_versions.VERSION} "), newest


def test_compatible_tensorflow_releases():
    assert _loader.compatible("2.19.0", "2.19.1")
    assert not _loader.compatible("2.19.1", "2.20.0")
    assert not _loader.compatible("2.23.0.dev20261026", "2.23.0.dev20261027")
    assert _loader.compatible("2.23.0.dev20261026", "2.23.0.dev20261026")
    assert not _loader.compatible("2.21.0rc1", "2.21.0")


def test_tensorflow_below_the_window_is_refused_with_the_range():
    with pytest.raises(ImportError, match=r"TensorFlow 2.15.1 is installed.*TensorFlow 2.16 or newer"):
        _versions.check("TensorFlow", "2.15.1", _versions.MIN_TENSORFLOW, "")
    _versions.check("TensorFlow", "2.16.0", _versions.MIN_TENSORFLOW, "")


@pytest.mark.subprocess
def test_library_that_cannot_load(tmp_path):
    package = _copy_package(tmp_path)
    # Stamped, but not a shared object: dlopen fails, and the message says so.
    (package / "_rmsprop_ops.so").write_bytes(
        f"rmsprop_op built against TensorFlow {tf.__version__};".encode())
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert "could not load" in result.stderr and _installed_copy_hint() in result.stderr
    assert "Segmentation" not in result.stderr


def test_gpu_kernels_absent_means_cpu_only():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    assert rmsprop_op.GPU_KERNELS_LOADED is False


STAMP = b"...; rmsprop_op GPU kernels built for CUDA 12.4 (sm_60 sm_70 sm_80 sm_89 compute_90);..."


@pytest.mark.parametrize("capability, code", [
    ((6, 0), "machine code"), ((6, 1), "machine code"),  # P100, GTX 1080
    ((7, 5), "machine code"),  # T4 runs sm_70's code
    ((8, 6), "machine code"), ((8, 9), "machine code"),
    ((9, 0), "PTX"), ((10, 0), "PTX"), ((12, 0), "PTX"),  # H100, B200, RTX 50
    ((5, 2), None), ((3, 7), None),
])
def test_kernel_code_for_each_gpu(capability, code):
    archs = ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]
    assert _loader.kernel_code_for(capability, archs) == code


def test_gpu_support_follows_driver_and_capability():
    problem = _loader.gpu_support_problem
    assert problem(STAMP, 12000, {"GPU:0": (7, 5)}) is None  # machine code: any CUDA 12 driver
    assert problem(STAMP, 12040, {"GPU:0": (9, 0)}) is None  # PTX: a 12.4 driver
    assert "needs a driver for CUDA 12.4" in problem(STAMP, 12020, {"GPU:0": (9, 0)})
    assert "CUDA 12.0 or newer" in problem(STAMP, 11080, {"GPU:0": (8, 0)})
    assert "no CUDA" in problem(STAMP, None, {})
    assert "compute capability 5.2" in problem(STAMP, 12080, {"GPU:0": (8, 0), "GPU:1": (5, 2)})
    assert "no CUDA build stamp" in problem(b"something else", 12080, {})


@pytest.mark.skipif(not os.path.exists(_loader.GPU_LIBRARY), reason="GPU library not built")
def test_built_gpu_library_carries_its_cuda_release_and_tensorflows_architectures():
    with open(_loader.GPU_LIBRARY, "rb") as f:
        stamp = f.read()
    built_for = _loader._STAMP.search(stamp)
    if built_for is None or built_for.group(1).decode() != tf.__version__:
        pytest.skip("the GPU library was built for another TensorFlow")
    match = _loader._CUDA_STAMP.search(stamp)
    assert match is not None and match.group(1) == b"12"
    built = match.group(3).decode().split()
    listed = tf.sysconfig.get_build_info().get("cuda_compute_capabilities")
    if listed:
        assert built == list(listed)


@pytest.mark.skipif(not os.path.exists(_loader.GPU_LIBRARY), reason="GPU library not built")
def test_gpu_library_refused_on_a_driver_too_old(monkeypatch):
    monkeypatch.setattr(_loader, "_cuda_driver_version", lambda: 11080)
    assert "driver" in _loader._gpu_unsupported_reason([])
    monkeypatch.setattr(_loader, "_cuda_driver_version", lambda: None)
    assert "driver" in _loader._gpu_unsupported_reason([])
    monkeypatch.setattr(_loader, "_cuda_driver_version", lambda: 12000)
    assert _loader._gpu_unsupported_reason([]) is None
