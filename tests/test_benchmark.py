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
