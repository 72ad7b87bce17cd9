"""Updates and reads of shared variables from many threads.

TensorFlow releases the GIL while an eager op runs, so these threads really
do run the kernels at the same time.
"""
import contextlib
import functools
import hashlib
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import rmsprop_op

THREADS, STEPS = 8, 200
HYPER = dict(lr=1e-3, rho=0.9, momentum=0.9, epsilon=1e-7)
TIMEOUT = 120  # seconds; a thread still alive after this is a deadlock


def _run_threads(n, target):
    """Runs target(i) on n threads started together; re-raises the first error."""
    errors = []
    barrier = threading.Barrier(n)

    def body(i):
        try:
            barrier.wait(timeout=TIMEOUT)
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads still running: deadlock?"
    if errors:
        raise errors[0]


def _initial(shape, seed=0):
    rng = np.random.default_rng(seed)
    return dict(var=rng.standard_normal(shape).astype(np.float32),
                ms=(np.abs(rng.standard_normal(shape)) * 0.1 + 0.01).astype(np.float32),
                mg=(rng.standard_normal(shape) * 0.01).astype(np.float32),
                mom=(rng.standard_normal(shape) * 0.1).astype(np.float32))


def _variables(initial, centered):
    return {k: tf.Variable(v) for k, v in initial.items() if centered or k != "mg"}


def _update(v, grad, indices, use_locking):
    rmsprop_op.update(v["var"], v["ms"], grad, mg=v.get("mg"), mom=v["mom"], indices=indices,
                      **HYPER, use_locking=use_locking)


def _dense(v, grad, use_locking=True):
    _update(v, grad, None, use_locking)


def _sparse(v, grad, indices, use_locking=True):
    _update(v, grad, indices, use_locking)


def _bits(variables):
    return {k: v.numpy().view(np.uint32) for k, v in variables.items()}


def _assert_same(actual, expected):
    for k in expected:
        np.testing.assert_array_equal(actual[k], expected[k], err_msg=k)


# Every thread applies the same gradient, so whatever the order the states
# run through the same sequence: with nothing lost and nothing interleaved
# the result is that of THREADS * STEPS sequential updates, bit for bit.
# Each step moves var by far more than an ulp, so one lost step shows.

@pytest.mark.parametrize("centered", [False, True])
def test_dense_updates_from_many_threads_are_neither_lost_nor_torn(centered):
    initial = _initial((1 << 15,))  # large enough to be split over the thread pool
    grad = tf.constant(np.random.default_rng(1).standard_normal(1 << 15).astype(np.float32))
    shared = _variables(initial, centered)
    _run_threads(THREADS, lambda i: [_dense(shared, grad) for _ in range(STEPS)])

    sequential = _variables(initial, centered)
    for step in range(THREADS * STEPS):
        if step == THREADS * STEPS - 1:
            one_step_short = _bits(sequential)
        _dense(sequential, grad)
    expected = _bits(sequential)
    assert not np.array_equal(one_step_short["var"], expected["var"])
    _assert_same(_bits(shared), expected)


@pytest.mark.parametrize("centered", [False, True])
def test_sparse_updates_from_many_threads_are_neither_lost_nor_torn(centered):
    initial = _initial((64, 512))
    indices = tf.constant([5, 17, 5, 63, 0, 17, 5, 40, 41, 42])  # unsorted, duplicates
    grad = tf.constant(np.random.default_rng(2).standard_normal((10, 512)).astype(np.float32))
    shared = _variables(initial, centered)
    _run_threads(THREADS, lambda i: [_sparse(shared, grad, indices) for _ in range(STEPS)])

    sequential = _variables(initial, centered)
    for step in range(THREADS * STEPS):
        if step == THREADS * STEPS - 1:
            one_step_short = _bits(sequential)
        _sparse(sequential, grad, indices)
    expected = _bits(sequential)
    assert not np.array_equal(one_step_short["var"], expected["var"])
    _assert_same(_bits(shared), expected)


# A read returns a snapshot: the tensor it gave must not change when an
# update runs later. Checkpoints read without a copy (read_value_no_copy:
# DisableCopyOnRead, then a read that aliases the variable's buffer), so an
# update that wrote into the aliased buffer would change a value already on
# its way to disk. A sparse update that finds the variable in copy-on-read
# mode may take its locks shared, and a no-copy read can slip in between;
# the update must notice that once it holds the locks.

@pytest.mark.parametrize("kind,use_locking", [("dense", True), ("sparse", True),
                                              ("sparse", False)])
def test_a_no_copy_read_never_changes_afterwards(kind, use_locking):
    shape = (1024, 1024)  # copying takes long enough for a read to come between
    variables = _variables(_initial(shape), centered=False)
    indices = tf.constant([0, 5, 9, 1000])
    rows = [0, 5, 9, 1000]
    sparse_grad = tf.ones((4, shape[1]))
    dense_grad = tf.ones(shape)
    stop = threading.Event()
    errors = []

    def train():
        try:
            while not stop.is_set():
                if kind == "dense":
                    _dense(variables, dense_grad, use_locking)
                else:
                    _sparse(variables, sparse_grad, indices, use_locking)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    trainer = threading.Thread(target=train, daemon=True)
    trainer.start()
    changed, reads = 0, 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and trainer.is_alive():
            held = []
            for v in variables.values():
                x = v.read_value_no_copy()
                held.append((x, x.numpy()[rows].copy()))
            time.sleep(0.001)  # let the trainer run a few steps
            for x, before in held:
                reads += 1
                changed += not np.array_equal(x.numpy()[rows], before)
    finally:
        stop.set()
        trainer.join(TIMEOUT)
    assert not trainer.is_alive()
    if errors:
        raise errors[0]
    assert reads >= 30  # at least ten rounds, even under a sanitizer
    assert changed == 0, f"{changed} of {reads} reads changed after they were read"


# A checkpoint written while another thread trains. TensorFlow's save path
# reads each variable by itself (DisableCopyOnRead and a read under that
# variable's lock only; nothing locks var and its slots together), so the
# update ops can only guarantee that each saved tensor is the variable's
# state after some whole number of steps, never a mix of two steps. Across
# variables the steps may differ: a checkpoint whose var and slots agree
# needs the application to keep updates out while it saves (as Keras does by
# saving between steps on the training thread), which the second test does.

SHAPE = (256, 128)
MAX_STEPS = 1600
SAVES = 12


def _step_inputs(k):
    rng = np.random.default_rng(100 + k)
    if k % 2 == 0:
        return "dense", tf.constant(rng.standard_normal(SHAPE).astype(np.float32)), None
    indices = rng.integers(0, SHAPE[0], size=96)
    grad = rng.standard_normal((96, SHAPE[1])).astype(np.float32)
    return "sparse", tf.constant(grad), tf.constant(indices)


def _apply_step(variables, inputs):
    kind, grad, indices = inputs
    if kind == "dense":
        _dense(variables, grad)
    else:
        _sparse(variables, grad, indices)


def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def _sequential_run():
    """The inputs of every step, and every state of every variable along the
    run: {name: {digest: set of step counts}}."""
    initial = _initial(SHAPE)
    inputs = [_step_inputs(k) for k in range(MAX_STEPS)]
    reference = _variables(initial, centered=True)
    states = {name: {_digest(initial[name]): {0}} for name in reference}
    for k in range(MAX_STEPS):
        _apply_step(reference, inputs[k])
        for name, v in reference.items():
            states[name].setdefault(_digest(v.numpy()), set()).add(k + 1)
    return inputs, states


def _train_while_saving(tmp_path, pause_for_saves):
    """Trains on one thread while the main thread writes SAVES checkpoints.
    Returns a list, per checkpoint, of (steps done before, steps done after,
    {name: set of step counts whose state equals the saved tensor})."""
    initial = _initial(SHAPE)
    inputs, states = _sequential_run()
    variables = _variables(initial, centered=True)
    checkpoint = tf.train.Checkpoint(**variables)
    done = [0]
    stop = threading.Event()
    pause = threading.Lock()

    errors = []

    def train():
        try:
            for k in range(MAX_STEPS):
                if stop.is_set():
                    return
                with pause if pause_for_saves else contextlib.nullcontext():
                    _apply_step(variables, inputs[k])
                    done[0] = k + 1
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    trainer = threading.Thread(target=train, daemon=True)
    trainer.start()
    results = []
    try:
        for i in range(SAVES):
            while done[0] < (i + 1) * MAX_STEPS // (2 * SAVES) and trainer.is_alive():
                time.sleep(0.001)  # spread the saves over the first half
            with pause if pause_for_saves else contextlib.nullcontext():
                before = done[0]
                path = checkpoint.write(str(tmp_path / f"ckpt-{i}"))
                after = done[0]
            reader = tf.train.load_checkpoint(path)
            found = {name: states[name].get(
                _digest(reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE")), set())
                for name in variables}
            results.append((before, after, found))
    finally:
        stop.set()
        trainer.join(TIMEOUT)
    assert not trainer.is_alive()
    if errors:
        raise errors[0]

    # The last checkpoint restores bit for bit into fresh variables.
    fresh = _variables(_initial(SHAPE, seed=9), centered=True)
    tf.train.Checkpoint(**fresh).read(path).assert_consumed()
    for name, v in fresh.items():
        np.testing.assert_array_equal(
            v.numpy().view(np.uint32),
            reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE").view(np.uint32))
    return results


def test_checkpoint_during_training_saves_each_variable_whole(tmp_path):
    for before, after, found in _train_while_saving(tmp_path, pause_for_saves=False):
        for name, steps in found.items():
            # A step still running when the read came may have finished
            # before its count was published: hence after + 1.
            assert any(before <= k <= after + 1 for k in steps), (
                f"saved {name} is no state between steps {before} and {after + 1}: "
                f"torn, or from another step ({sorted(steps)[:5]})")


def test_checkpoint_with_training_paused_is_consistent(tmp_path):
    for before, after, found in _train_while_saving(tmp_path, pause_for_saves=True):
        assert before == after
        for name, steps in found.items():
            assert before in steps, f"saved {name} is not the state after step {before}"
