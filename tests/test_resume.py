"""A training process killed with SIGKILL resumes from its last checkpoint and
ends exactly where an uninterrupted run ends.

tests/resume_worker.py trains a small Keras model with keras_optimizer.RMSprop
and writes a tf.train.Checkpoint and a .keras file every few steps. One run
is killed once a checkpoint is on disk, while it keeps training and writing;
two new processes resume it, one from the latest checkpoint and one from the
latest .keras file, and train to the same final step as an uninterrupted
run. Model weights and every optimizer variable (slots, step count) must
agree bit for bit.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.processes import ROOT, start_python

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

WORKER = os.path.join(ROOT, "tests", "resume_worker.py")
STEPS, EVERY = 40, 5
KILL_AFTER = 10  # kill once the checkpoint of this step (or a later one) exists
TIMEOUT = 180  # seconds for any one process


class _Workers:
    """Worker processes, each killed (by its own pid) if the test leaves early."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = []

    def start(self, name, *args):
        proc = start_python([WORKER, *args], log=self.tmp_path / f"{name}.log",
                            env=dict(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
        proc.name = name
        self.procs.append(proc)
        return proc

    def log(self, proc):
        return (self.tmp_path / f"{proc.name}.log").read_text()

    def wait_ok(self, proc):
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{proc.name} still running after {TIMEOUT} s:\n{self.log(proc)[-3000:]}")
        assert proc.returncode == 0, f"{proc.name} failed:\n{self.log(proc)[-3000:]}"
        return [json.loads(line) for line in self.log(proc).splitlines() if line.startswith("{")]

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(tmp_path):
    w = _Workers(tmp_path)
    yield w
    w.close()


def _latest_checkpoint_step(directory):
    """The step of the checkpoint the CheckpointManager last recorded, or -1.
    The manager rewrites its state file atomically after a checkpoint is
    complete, so a half-written one is never named there."""
    try:
        with open(os.path.join(directory, "ckpt", "checkpoint")) as f:
            match = re.search(r'^model_checkpoint_path: ".*-(\d+)"', f.read(), re.M)
    except FileNotFoundError:
        return -1
    return int(match.group(1)) if match else -1


def _load(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _assert_bitwise_equal(actual, expected, what):
    assert sorted(actual) == sorted(expected), what
    for k in expected:
        a, e = actual[k], expected[k]
        assert a.dtype == e.dtype and a.shape == e.shape, (what, k)
        assert a.tobytes() == e.tobytes(), f"{what}: {k} differs"


def test_killed_run_resumes_bit_for_bit(tmp_path, workers):
    killed_dir, straight_dir = tmp_path / "killed", tmp_path / "straight"
    killed_dir.mkdir()
    straight_dir.mkdir()
    # The run to be killed pauses between steps so that it is still training
    # when the kill comes; the uninterrupted run goes alongside it.
    killed = workers.start("killed", "--dir", killed_dir, "--steps", STEPS, "--every", EVERY,
                           "--out", killed_dir / "never.npz", "--pause", 0.1)
    straight = workers.start("straight", "--dir", straight_dir, "--steps", STEPS,
                             "--every", EVERY, "--out", tmp_path / "straight.npz")

    deadline = time.monotonic() + TIMEOUT
    while _latest_checkpoint_step(killed_dir) < KILL_AFTER:
        assert killed.poll() is None, f"exited early:\n{workers.log(killed)[-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait(TIMEOUT)
    assert killed.returncode == -signal.SIGKILL
    assert not (killed_dir / "never.npz").exists()
    last_checkpoint = _latest_checkpoint_step(killed_dir)
    assert KILL_AFTER <= last_checkpoint < STEPS

    # Each resumed run gets its own copy: both go on writing checkpoints.
    resumed = {}
    for kind in ("checkpoint", "keras"):
        directory = tmp_path / f"resume-{kind}"
        shutil.copytree(killed_dir, directory)
        resumed[kind] = workers.start(f"resume-{kind}", "--dir", directory, "--steps", STEPS,
                                      "--every", EVERY, "--out", tmp_path / f"{kind}.npz",
                                      "--resume", kind)
    starts = {kind: workers.wait_ok(proc)[0]["start"] for kind, proc in resumed.items()}
    workers.wait_ok(straight)

    assert starts["checkpoint"] == last_checkpoint
    keras_files = sorted(killed_dir.glob("model-*.keras"))
    assert starts["keras"] == int(keras_files[-1].stem.split("-")[1]) >= KILL_AFTER - EVERY
    expected = _load(tmp_path / "straight.npz")
    for kind in resumed:
        _assert_bitwise_equal(_load(tmp_path / f"{kind}.npz"), expected,
                              f"resumed from the {kind} of step {starts[kind]}")
