"""The CUDA kernels' float64 flush-to-zero (rmsprop_op/cc/kernels/common/
flushed_double.h), checked on this CPU: GPUs have no float64 flush mode, so
the kernels emulate the CPU's, and tests/native/flushed_double_check.cc
compares the emulation with the processor's own DAZ/FTZ float64, operation by
operation and over whole updates (real and complex), bit for bit."""
import os
import platform
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "tests", "native", "flushed_double_check.cc")

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or shutil.which(os.environ.get("CXX", "g++")) is None,
    reason="needs an x86-64 C++ compiler (the check sets MXCSR)")


@pytest.mark.subprocess  # a compiler, then the program it built
def test_flushed_double_matches_the_processors_flush_to_zero(tmp_path):
    binary = tmp_path / "flushed_double_check"
    # -frounding-math keeps the operations inside the region where MXCSR is set.
    subprocess.run([os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-ffp-contract=off",
                    "-frounding-math", f"-I{ROOT}", SOURCE, "-o", str(binary)], check=True)
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    counts = dict(re.findall(r"(\w+): \d+ cases, (\d+) flushed, 0 failed", run.stdout))
    # Not vacuous: flushing changed many results, and the emulation matched each.
    assert int(counts["operations"]) > 10000 and int(counts["updates"]) > 10000, run.stdout
