"""`make wheel-test`: installs a built wheel into a fresh virtual environment
that holds only the TensorFlow minor the wheel was built for, and tests it
from a folder outside the source tree, so that nothing of the checkout is on
sys.path: the installed-package tests (documented example, model.fit,
SavedModel in a fresh process, the demo without its extra) and the op tests.

    python tools/test_wheel.py dist/rmsprop_op-0.2.0+tf2.21-py3-none-manylinux_2_35_x86_64.whl

Standard library only. The environment lives in .compat/wheel/ (ignored).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".compat" / "wheel"
# Copied next to each other into the outside folder, as the package `tests`.
TEST_FILES = ["conftest.py", "bundle.py", "helpers.py", "reference.py", "test_ops.py", "test_op_errors.py",
              "installed/conftest.py", "installed/test_installed_package.py"]


def tensorflow_requirement(wheel):
    """The wheel's own `Requires-Dist` on TensorFlow, e.g. 'tensorflow<2.22,>=2.21'."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    for line in metadata.splitlines():
        match = re.match(r"Requires-Dist: ((tensorflow|tf-nightly)\S*[^;]*)$", line.strip())
        if match:
            return match.group(1).replace(" ", "")
    sys.exit(f"{wheel} declares no TensorFlow requirement")


def run(cmd, **kwargs):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def main(argv):
    if len(argv) != 1:
        sys.exit(__doc__)
    wheel = Path(argv[0]).resolve()
    requirement = tensorflow_requirement(wheel)
    if HOME.exists():
        shutil.rmtree(HOME)
    venv = HOME / "venv"
    python = str(venv / "bin" / "python")
    run([sys.executable, "-m", "venv", str(venv)])
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    # Only TensorFlow first, then the wheel with what it declares, then the
    # test runner: a dependency the wheel forgot to declare fails the tests.
    run([python, "-m", "pip", "install", "--quiet", requirement])
    run([python, "-m", "pip", "install", "--quiet", str(wheel)])
    run([python, "-m", "pip", "install", "--quiet", "pytest", "hypothesis"])

    outside = Path(tempfile.mkdtemp(prefix="rmsprop_op_wheel_test_"))
    try:
        for name in TEST_FILES:
            target = outside / "tests" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "tests" / name, target)
        env = dict(os.environ, RMSPROP_OP_TEST_INSTALLED="1", TF_CPP_MIN_LOG_LEVEL="2")
        for variable in ("RMSPROP_OP_LIBRARY", "PYTHONPATH", "TF_USE_LEGACY_KERAS"):
            env.pop(variable, None)
        # -P would keep the folder off sys.path; the tests import `tests.reference`
        # from it, and it holds nothing but the copied tests.
        run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=outside, env=env)
    finally:
        shutil.rmtree(outside, ignore_errors=True)
    print(f"wheel test passed: {wheel.name} with {requirement}")


if __name__ == "__main__":
    main(sys.argv[1:])
