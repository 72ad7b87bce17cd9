"""Every ```python block of README.md runs as pasted: in a fresh interpreter,
from a temporary folder, with only the repository root on PYTHONPATH."""
import os
import re

import pytest

from tests.processes import ROOT, run_python


def _python_blocks():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(pytest.param(match.group(1), id=f"line-{line}"))
    return blocks


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 3


@pytest.mark.subprocess
@pytest.mark.parametrize("code", _python_blocks())
def test_readme_python_block_runs(code, tmp_path):
    # A block that needs TF_USE_LEGACY_KERAS sets it itself.
    result = run_python(["-c", code], cwd=tmp_path, env=dict(
        PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS=None))
    assert result.returncode == 0, f"{code}\n--- stderr ---\n{result.stderr[-3000:]}"
