"""The demo runs, its numbers are the documented ones, and a newcomer sees no
error-looking lines."""
import os
import re

import pytest

import keras_optimizer.__main__ as demo
from tests.processes import run_python
# What would look like a failure on a CPU-only machine.
ALARMING = re.compile(r"^[EWF]\d{4} |error|warning|fail|Traceback|cuInit|absl", re.IGNORECASE)


def test_documented_example():
    step_count, var1 = demo.documented_example()
    assert step_count == 1
    assert abs(var1 - 9.683772) < 5e-7


def test_demo_trains_both_models(capsys):
    demo.main(["--epochs", "1", "--no-progress", "--parts", "dense", "embedding"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("dense ", "embedding ")) and "RMSprop " in line]
    assert len(rows) == 4
    dense = {r[1]: (float(r[2]), float(r[3])) for r in rows if r[0] == "dense"}
    stock, ours = dense["keras.optimizers.RMSprop"], dense["keras_optimizer.RMSprop"]
    assert abs(stock[0] - ours[0]) < 1e-3 and abs(stock[1] - ours[1]) < 1e-2
    assert ours[1] > 0.8  # a real classifier, not a smoke test
    assert all(int(r[5]) == 44 for r in rows)  # steps timed: 45 a epoch, the first left out
    assert "busy or shared machine" in out


def _run(args):
    return run_python(args, env={k: None for k in os.environ if k.startswith("TF_CPP_")},
                      timeout=600)


@pytest.mark.subprocess
def test_demo_prints_no_alarming_lines():
    result = _run(["-m", "keras_optimizer", "--epochs", "1", "--no-progress"])
    assert result.returncode == 0, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    assert not [line for line in lines if ALARMING.search(line)], result.stderr
    assert "step_count = 1, var1 = 9.683772" in result.stdout


@pytest.mark.subprocess
def test_importing_the_package_leaves_tensorflow_logging_alone():
    code = "import os, keras_optimizer; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    result = _run(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "None"
