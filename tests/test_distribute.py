"""keras_optimizer.RMSprop under tf.distribute strategies.

Each strategy needs a fresh TensorFlow runtime (logical CPU devices, a
cluster), so the training runs happen in subprocesses of
tests/distribute_worker.py; the tests compare what they write.
"""
import json
import os
import signal
import time

import numpy as np
import pytest

from keras_optimizer import _compat
from tests import distribute_worker as job
from tests.processes import ROOT, start_python

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

# Keras 3.3 to 3.5 never sum the replicas' gradients, with the stock optimizer
# as with ours (test_mirrored_fit_matches_stock_optimizer checks ours does the
# same there); what needs summed gradients is tested from Keras 3.6.
needs_summed_gradients = pytest.mark.skipif(
    not _compat.keras_sums_replica_gradients(),
    reason="Keras before 3.6 does not sum the replicas' gradients (stock optimizer neither)")

WORKER = os.path.join(ROOT, "tests", "distribute_worker.py")
TIMEOUT = 240  # seconds for one group of subprocesses; each takes 5-20 s on 2 cores


def _env(**extra):
    """Changes to the environment of a run (see tests/processes.py)."""
    path = [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=os.pathsep.join(path), TF_CONFIG=None)
    env.update(extra)
    return env


class _Run:
    """A subprocess running one MODE of the worker script; its output goes to
    a file (a pipe could fill and block it)."""

    def __init__(self, name, mode, out, **env):
        self.name = name
        self.log = os.path.join(out, name.replace(" ", "_") + ".log")
        # Own session, so that a hung run is killed with anything it started.
        self.proc = start_python([WORKER, mode, out], log=self.log, env=_env(**env),
                                 new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()[-3000:]


def _run_all(runs, timeout=TIMEOUT):
    """Waits for every run, at most `timeout` seconds in all. Fails with the
    output of those that failed or hung; once one has failed the others are
    stopped (a worker whose peer died would wait in a collective until the
    timeout). Never leaves one running."""
    deadline = time.monotonic() + timeout
    failures = []
    try:
        running = list(runs)
        while running and not failures and time.monotonic() < deadline:
            time.sleep(0.2)
            for run in [r for r in running if r.proc.poll() is not None]:
                running.remove(run)
                if run.proc.returncode != 0:
                    failures.append(f"{run.name}: exit status {run.proc.returncode}\n"
                                    f"{run.output()}")
        if not failures:
            failures = [f"{run.name}: no result after {timeout} s\n{run.output()}"
                        for run in running]
    finally:
        for run in runs:
            run.stop()
    if failures:
        pytest.fail("\n\n".join(failures))


# What a server prints when another process took its port after the choice.
_PORT_TAKEN = ("already in use", "could not start grpc server")


def _run_cluster(start_runs, attempts=3):
    """_run_all(start_runs()), with fresh ports after a port was taken."""
    for attempt in range(attempts):
        try:
            return _run_all(start_runs())
        except pytest.fail.Exception as e:
            if attempt == attempts - 1 or not any(m in str(e).lower() for m in _PORT_TAKEN):
                raise


def _load(out, name):
    with np.load(os.path.join(out, name + ".npz")) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _facts(out, name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)

# Two runs of the same training in float32 that differ only in how the
# gradient sums are grouped (per replica then all-reduced, or over the whole
# batch at once; and Grappler's rewrite of the stock optimizer's division,
# see test_optimizer.py) agree to round-off, not bit for bit.
RTOL, ATOL = 2e-5, 2e-6


def _assert_close(actual, expected):
    assert len(actual) == len(expected)
    for i, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"array {i}")


def _assert_equal(actual, expected):
    assert len(actual) == len(expected)
    for i, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_array_equal(a, b, err_msg=f"array {i}")


def _assert_unseen_rows_untouched(trained, initial):
    """Embedding rows no batch named: weights as initialised, slots zero."""
    embedding = trained[0]
    np.testing.assert_array_equal(embedding[job.SEEN:], initial[0][job.SEEN:])
    assert not np.array_equal(embedding[:job.SEEN], initial[0][:job.SEEN])
    slots = [w for w in trained[len(initial):] if w.shape == (job.VOCAB, 4)]
    assert len(slots) == 2  # velocity and momentum
    for slot in slots:
        assert not slot[job.SEEN:].any()
        assert slot[:job.SEEN].any()


def _assert_placement(facts, replicas):
    """Every slot (velocity, momentum) on the devices of its variable."""
    assert facts["iterations"] == job.STEPS
    if _compat.keras_sums_replica_gradients():
        assert facts["replicas_agree"]
    assert len(facts["slot_devices"]) == len(facts["variable_devices"]) > 0
    for variable, slots in zip(facts["variable_devices"], facts["slot_devices"]):
        assert len(variable) == replicas
        assert slots == [variable, variable]


# MirroredStrategy over two logical CPUs.

@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored")
    _run_all([_Run("mirrored", "mirrored", out)])
    return out


def test_mirrored_fit_matches_stock_optimizer(mirrored):
    _assert_close(_load(mirrored, "mirrored_dense_ours"), _load(mirrored, "mirrored_dense_stock"))


def test_mirrored_slots_are_mirrored_beside_their_variables(mirrored):
    facts = _facts(mirrored, "mirrored")
    assert facts["replicas"] == 2
    for kind in job.KINDS:
        assert set(facts[kind]["types"]) == {"MirroredVariable"}
        _assert_placement(facts[kind], replicas=2)


def test_mirrored_iterations_count_global_steps(mirrored):
    facts = _facts(mirrored, "mirrored")
    assert [facts[kind]["iterations"] for kind in job.KINDS] == [job.STEPS, job.STEPS]


def _stock_fit_is_the_same_on_two_replicas(mirrored):
    """Keras 3.3 to 3.5 never sum the replicas' gradients, and in Keras 3.6
    `fit` under MirroredStrategy differs from one device by far more than
    round-off too, with the stock optimizer as with ours."""
    mirrored_stock = _load(mirrored, "mirrored_dense_stock")
    one_device = _load(mirrored, "one_device_dense_stock")
    return all(np.allclose(a, b, rtol=RTOL, atol=ATOL) for a, b in zip(mirrored_stock, one_device))


def test_mirrored_compact_state_is_mirrored_and_matches_one_device(mirrored):
    """int8 state: codes and scales are mirrored beside their variables, the
    replicas agree, and the training is one device's to the state's
    precision: where the replicas' summed gradient differs from one
    device's in the last bit, a code may round the other way, and that
    element's later steps differ by a part of one step (learning rate 0.01)."""
    facts = _facts(mirrored, "mirrored")["compact"]
    assert set(facts["types"]) == {"MirroredVariable"}
    assert {"uint8", "int8"} <= set(facts["dtypes"])
    _assert_placement(facts, replicas=2)
    if not _stock_fit_is_the_same_on_two_replicas(mirrored):
        pytest.skip("this Keras's fit on two replicas differs from one device with the "
                    "stock optimizer too")
    ours, one_device = (_load(mirrored, n) for n in ("mirrored_compact_ours",
                                                     "mirrored_compact_one_device"))
    for a, b in zip(ours[:4], one_device[:4]):  # the model's weights
        apart = np.abs(a - b)
        assert apart.max() < job.KWARGS["learning_rate"]
        assert np.median(apart) < 1e-4  # most elements: no code rounded otherwise


def test_mirrored_embedding_matches_one_device(mirrored):
    ours = _load(mirrored, "mirrored_embedding_ours")
    _assert_unseen_rows_untouched(ours, _load(mirrored, "mirrored_embedding_initial"))
    if _compat.keras_sums_replica_gradients():
        # The all-reduced sparse gradients reach the sparse op as
        # IndexedSlices of unknown static shape.
        shapes = _facts(mirrored, "mirrored")["sparse_gradient_shapes"]
        assert shapes and all(s == [None, None] for s in shapes)
    if not _stock_fit_is_the_same_on_two_replicas(mirrored):
        pytest.skip("this Keras's fit on two replicas differs from one device with the "
                    "stock optimizer too")
    _assert_close(ours, _load(mirrored, "mirrored_embedding_one_device"))


def test_applied_outside_the_scope_every_replica_is_updated(mirrored):
    ours = _load(mirrored, "outside_scope_ours")
    _assert_equal(ours, _load(mirrored, "outside_scope_stock"))
    assert not np.array_equal(ours[0], np.ones(3))


def test_optimizer_of_no_strategy_refuses_mirrored_variables(mirrored):
    error = _facts(mirrored, "mirrored")["foreign_strategy_error"]
    assert error and "MirroredVariable" in error and "strategy.scope()" in error


# MultiWorkerMirroredStrategy: two worker processes on loopback.

def _start_workers(out, n=2):
    ports = job.free_ports(n)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return [_Run(f"worker {i}", "worker", out, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}})) for i in range(n)]


@pytest.fixture(scope="module")
def multi_worker(tmp_path_factory):
    out = tmp_path_factory.mktemp("multi_worker")
    _run_cluster(lambda: _start_workers(out))
    _run_all([_Run("single", "single", out)])
    return out


@needs_summed_gradients
def test_multi_worker_matches_single_worker(multi_worker):
    for kind in job.KINDS:
        chief = _load(multi_worker, f"worker_{kind}_worker0")
        _assert_equal(_load(multi_worker, f"worker_{kind}_worker1"), chief)
        _assert_close(chief, _load(multi_worker, f"single_{kind}"))
    _assert_unseen_rows_untouched(_load(multi_worker, "worker_embedding_worker0"),
                                  _load(multi_worker, "single_embedding_initial"))


def test_multi_worker_slots_and_iterations(multi_worker):
    for name in ("worker0", "worker1"):
        facts = _facts(multi_worker, f"worker_{name}")
        assert facts["replicas"] == 2
        for kind in job.KINDS:
            assert set(facts[kind]["types"]) == {"MirroredVariable"}
            _assert_placement(facts[kind], replicas=1)  # one replica per worker
        assert facts["sparse_gradient_shapes"]
        if _compat.keras_sums_replica_gradients():  # all-reduced: unknown static shape
            assert all(s == [None, None] for s in facts["sparse_gradient_shapes"])


def test_chief_checkpoint_restores_in_one_process(multi_worker):
    for kind in job.KINDS:
        _assert_equal(_load(multi_worker, f"restored_{kind}"),
                      _load(multi_worker, f"worker_{kind}_worker0"))


# ParameterServerStrategy: coordinator, 2 workers and 2 parameter servers in
# one process.

@pytest.fixture(scope="module")
def parameter_server(tmp_path_factory):
    out = tmp_path_factory.mktemp("parameter_server")
    _run_cluster(lambda: [_Run("ps", "ps", out)])
    return out


def test_parameter_server_matches_one_process(parameter_server):
    for kind in job.KINDS:
        _assert_close(_load(parameter_server, f"ps_{kind}"),
                      _load(parameter_server, f"ps_{kind}_one_process"))
    _assert_unseen_rows_untouched(_load(parameter_server, "ps_embedding"),
                                  _load(parameter_server, "ps_embedding_initial"))


def test_parameter_server_slots_live_beside_their_variables(parameter_server):
    facts = _facts(parameter_server, "ps")
    for kind in job.KINDS:
        _assert_placement(facts[kind], replicas=1)
        devices = {d for (d,) in facts[kind]["variable_devices"]}
        assert all("/job:ps/" in d for d in devices) and len(devices) == 2
    assert facts["sparse_gradient_shapes"]


def test_parameter_server_asynchronous_steps(parameter_server):
    facts = _facts(parameter_server, "ps")
    for kind in job.KINDS:
        trained = _load(parameter_server, f"ps_{kind}_async")
        assert all(np.isfinite(a).all() for a in trained)
        # Keras increments `iterations` by a read then a write; concurrent
        # steps can overwrite each other's increment (the stock optimizer's
        # too), so the count is at most, not exactly, one per step.
        assert job.STEPS < facts[kind]["async_iterations"] <= 2 * job.STEPS
    _assert_unseen_rows_untouched(_load(parameter_server, "ps_embedding_async"),
                                  _load(parameter_server, "ps_embedding_initial"))
