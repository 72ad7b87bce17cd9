"""The benchmark program runs and writes what the README table is made of.
(A smoke run at small sizes; timings are only meaningful from `make bench`.)"""
import json
import os
import subprocess

import pytest

from benchmarks import run

pytestmark = pytest.mark.skipif(
    subprocess.run(["make", "-q", "benchmarks/_bandwidth_probe.so"],
                   cwd=os.path.dirname(run.HERE)).returncode not in (0, 1),
    reason="cannot build the bandwidth probe")


@pytest.mark.slow
@pytest.mark.subprocess  # make builds the bandwidth probe
def test_quick_benchmark_writes_results(tmp_path):
    subprocess.run(["make", "benchmarks/_bandwidth_probe.so"], cwd=os.path.dirname(run.HERE),
                   check=True, capture_output=True)
    output = tmp_path / "results.json"
    assert run.main(["--quick", "--only", "sparse", "many", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    impls = {(r["group"], r["impl"]) for r in results["rows"]}
    assert {("sparse", "ours (op)"), ("sparse", "tf raw op"), ("sparse", "keras stock"),
            ("many", "ours grouped (op)"), ("many", "ours grouped (op, eager)"),
            ("many", "ours per-var (keras)")} <= impls
    for row in results["rows"]:
        assert row["ms"] > 0 and 0 < row["of_limit"]
    assert results["machine"]["cores"] >= 1
    assert all("met" in t for t in results["targets"])


@pytest.mark.slow
@pytest.mark.subprocess  # make builds the bandwidth probe
def test_quick_xla_rows(tmp_path):
    subprocess.run(["make", "benchmarks/_bandwidth_probe.so"], cwd=os.path.dirname(run.HERE),
                   check=True, capture_output=True)
    output = tmp_path / "results.json"
    assert run.main(["--quick", "--only", "xla", "--output", str(output)]) == 0
    rows = json.loads(output.read_text())["rows"]
    assert {r["impl"] for r in rows} >= {"ours (keras), XLA", "keras stock, XLA", "ours (keras)",
                                         "keras stock"}
    assert all(r["group"] == "xla" and r["ms"] > 0 for r in rows)
    fits = [r for r in rows if r["impl"] == "ours (keras), XLA" and "final_loss" in r]
    assert len(fits) == 2 and all(r["losses_agree"] for r in fits)


@pytest.mark.slow
@pytest.mark.subprocess  # make builds the bandwidth probe
def test_quick_compact_rows(tmp_path):
    subprocess.run(["make", "benchmarks/_bandwidth_probe.so"], cwd=os.path.dirname(run.HERE),
                   check=True, capture_output=True)
    output = tmp_path / "results.json"
    assert run.main(["--quick", "--only", "compact", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    rows = results["rows"]
    assert all(r["group"] == "compact" for r in rows)
    memory = {r["impl"]: r for r in rows if "state_bytes_per_parameter" in r}
    assert set(memory) == {"float32 state", "bfloat16 state", "int8 state"}
    # Three slots (momentum, centered) of 4, 2 and 1 bytes, int8 with a
    # float32 scale per 256 elements; the step counter and learning rate.
    for impl, per_element in (("float32 state", 12), ("bfloat16 state", 6),
                              ("int8 state", 3 * (1 + 4 / 256))):
        assert memory[impl]["state_bytes_per_parameter"] == pytest.approx(per_element, rel=1e-5)
    timed = [r for r in rows if r["ms"] is not None and r["impl"] in memory]
    cases = {r["case"] for r in timed}
    assert len(cases) == 2  # the dense and the sparse update
    # Keras's steps with int8 state: fused and as Keras's passes, the same calls.
    steps = {r["impl"]: r for r in rows if r["impl"].startswith("int8, ")}
    assert set(steps) == {"int8, steps fused", "int8, Keras's passes"}
    assert len({r["per_call"] for r in steps.values()}) == 1
    assert steps["int8, steps fused"]["fused_speedup"] == pytest.approx(
        steps["int8, Keras's passes"]["ms"] / steps["int8, steps fused"]["ms"])
    for case in cases:
        sides = [r for r in timed if r["case"] == case]
        assert {r["impl"] for r in sides} == set(memory)
        assert len({r["per_call"] for r in sides}) == 1  # the same calls on every side
        assert all(r["ms"] > 0 and r["of_limit"] > 0 for r in sides)
    targets = [t["target"] for t in results["targets"]]
    # Two memory targets and the dense update's speed (the sparse update's
    # is no target: a touched row brings its block of rows).
    compact = [t for t in targets if "compact" in t]
    assert len(compact) == 3
    speed = [t for t in compact if "no slower" in t]
    assert len(speed) == 1 and "dense" in speed[0]
