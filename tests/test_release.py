"""The release pieces: license, version, changelog, and `make wheels`
covering exactly the support window."""
import json
import os
import sys

import pytest

from rmsprop_op import _versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_wheels  # noqa: E402


def test_license_is_apache_2():
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_wheels_cover_every_minor_of_the_support_window():
    low, high = _versions.MIN_TENSORFLOW, _versions.NEWEST_TESTED_TENSORFLOW
    expected = [f"{low[0]}.{m}" for m in range(low[1], high[1] + 1)]
    assert list(build_wheels.minors()) == expected
    for minor, patch in build_wheels.minors().items():
        assert patch.startswith(minor + ".")


def test_release_table_lists_this_version_in_minor_order(tmp_path, monkeypatch):
    releasing = tmp_path / "RELEASING.md"
    releasing.write_text(f"x\n{build_wheels.TABLE_BEGIN}\nold\n{build_wheels.TABLE_END}\ny\n")
    dist = tmp_path / "dist"
    dist.mkdir()
    v = _versions.VERSION
    names = [f"rmsprop_op-{v}+tf2.21-py3-none-manylinux_2_35_x86_64.whl",
             f"rmsprop_op-{v}+tf2.9-py3-none-manylinux_2_35_x86_64.whl",
             "rmsprop_op-0.0.1+tf2.16-py3-none-linux_x86_64.whl"]  # another version: left out
    records = {}
    for name, tested in zip(names, (True, False, True)):
        (dist / name).write_bytes(b"")
        records[name] = dict(wheel=name, bytes=10_900_000, build_seconds=420, tested=tested,
                             test_seconds=180)
    (dist / "wheels.json").write_text(json.dumps(records))
    monkeypatch.setattr(build_wheels, "DIST", dist)
    monkeypatch.setattr(build_wheels, "RECORD", dist / "wheels.json")
    monkeypatch.setattr(build_wheels, "RELEASING", releasing)
    build_wheels.write_table()
    lines = releasing.read_text().splitlines()
    rows = [line for line in lines if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [names[1], names[0]]
    assert "FAILED" in rows[0] and "passed in 3 min" in rows[1] and "10.9 MB" in rows[1]
    assert lines[0] == "x" and lines[-1] == "y" and "old" not in lines


@pytest.mark.parametrize("label", ["rc0", "dev20261026"])
def test_prerelease_labels_are_valid_local_versions(label):
    version = _versions.package_version(f"2.23.0{label}")
    local = version.split("+")[1]
    assert all(part.isalnum() for part in local.split(".")), version
