"""`make compat`: the test suites in every TensorFlow x Keras cell of the
support window, each in a virtual environment of its own.

    python -m compat.run                        every cell of the window, then nightly
    python -m compat.run --cell oldest          the oldest cell (what CI runs)
    python -m compat.run --tf 2.17.1 --keras 3.5.0    one cell (tf_keras: the same minor)

Each cell gets .compat/<cell>/ (ignored by git): a virtual environment with
exactly that TensorFlow, Keras and tf_keras (pip's cache is shared, so a wheel
downloads once), the op library built against that TensorFlow by `make build`
into the cell's folder, then the op, Keras, tf_keras and demo checks against
that build. The results go to compat/results.json and into README.md's
compatibility table. Standard library only: it runs before any environment
exists.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".compat"
RESULTS = ROOT / "compat" / "results.json"
README = ROOT / "README.md"
TABLE_BEGIN = "<!-- compat-table:begin (written by make compat) -->"
TABLE_END = "<!-- compat-table:end -->"


@dataclass(frozen=True)
class Cell:
    tensorflow: str
    keras: str
    tf_keras: str
    kind: str = "window"  # "window", "nightly" (best effort) or "extra" (asked for by hand)

    @property
    def name(self):
        return f"tf{self.tensorflow}-keras{self.keras}"

    def requirements(self):
        if self.kind == "nightly":
            return ["--pre", "tf-nightly", "keras-nightly", "tf-keras-nightly"]
        return [f"tensorflow=={self.tensorflow}", f"keras=={self.keras}",
                f"tf-keras=={self.tf_keras}"]


# The latest patch of every supported TensorFlow minor, with the Keras 3 that
# was current when that minor came out (3.3 at least, and what TensorFlow
# itself requires), and with the newest Keras 3.
NEWEST_KERAS = "3.15.1"
_MINORS = [  # (TensorFlow, Keras current at its release, tf_keras of the minor)
    ("2.16.2", "3.3.3", "2.16.0"),
    ("2.17.1", "3.4.1", "2.17.0"),
    ("2.18.1", "3.6.0", "2.18.0"),
    ("2.19.1", "3.9.0", "2.19.0"),
    ("2.20.0", "3.11.2", "2.20.1"),
    ("2.21.0", "3.13.2", "2.21.0"),
]
WINDOW = [Cell(tf, keras, tfk) for tf, oldest, tfk in _MINORS for keras in (oldest, NEWEST_KERAS)]
NIGHTLY = Cell("nightly", "nightly", "nightly", kind="nightly")
TF_KERAS_OF_MINOR = {tf.rsplit(".", 1)[0]: tfk for tf, _, tfk in _MINORS}

# What every cell runs, in order: (step, test paths or command, environment).
TEST_STEPS = [
    ("op", ["tests/test_ops.py", "tests/test_op_errors.py", "tests/test_loader.py",
            "tests/test_nan_bits.py", "tests/test_xla.py", "tests/test_compact_state_ops.py"], {}),
    ("keras", ["tests/test_optimizer.py", "tests/test_optimizer_fit.py", "tests/test_api_parity.py",
               "tests/test_compat.py", "tests/test_serialization.py", "tests/test_gpu_fallback.py",
               "tests/test_fused_extras.py", "tests/test_differential.py",
               "tests/test_differential_cases.py", "tests/test_distribute.py", "tests/test_demo.py",
               "tests/test_compact_state.py"], {}),
    ("tf_keras", ["tests/legacy_suite"], {"TF_USE_LEGACY_KERAS": "1"}),
]
STEPS = ["install", "build"] + [s for s, _, _ in TEST_STEPS] + ["demo"]


def _run(cmd, log, env=None, timeout=3600):
    """Runs cmd with its output in `log`; returns (ok, seconds)."""
    start = time.monotonic()
    with open(log, "w") as out:
        try:
            result = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    timeout=timeout)
            ok = result.returncode == 0
        except subprocess.TimeoutExpired:
            out.write(f"\ncompat: timed out after {timeout} s\n")
            ok = False
    return ok, round(time.monotonic() - start, 1)


def _tail(log, lines=25):
    text = Path(log).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _junit_counts(path):
    """passed / failed / skipped from a pytest JUnit XML file."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return {}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return dict(passed=total - failed - skipped, failed=failed, skipped=skipped)


def _installed_versions(python):
    code = ("import importlib.metadata as m\n"
            "for d in ('tensorflow', 'tf-nightly', 'keras', 'keras-nightly', 'tf-keras',"
            " 'tf-keras-nightly', 'numpy'):\n"
            "    try: print(d, m.version(d))\n"
            "    except m.PackageNotFoundError: pass\n")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout
    versions = dict(line.split() for line in out.splitlines())
    return dict(tensorflow=versions.get("tensorflow") or versions.get("tf-nightly"),
                keras=versions.get("keras") or versions.get("keras-nightly"),
                tf_keras=versions.get("tf-keras") or versions.get("tf-keras-nightly"),
                numpy=versions.get("numpy"))


def _commit():
    """The checkout's commit, marked when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!README.md",
                  ":!compat/results.json")
    return f"{commit}+changes" if changed else commit


def run_cell(cell, fresh=False):
    """Installs, builds and tests one cell; returns its result record."""
    home = WORK / cell.name
    if fresh and home.exists():
        shutil.rmtree(home)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    venv = home / "venv"
    python = str(venv / "bin" / "python")
    library = home / "lib" / "_rmsprop_ops.so"
    record = dict(cell=cell.name, kind=cell.kind, commit=_commit(), steps={})
    print(f"\n== {cell.name} ({cell.kind}) in {home.relative_to(ROOT)}", flush=True)
    start = time.monotonic()

    def step(name, ok, seconds, **extra):
        record["steps"][name] = dict(ok=ok, seconds=seconds, **extra)
        counts = "".join(f" {k}={v}" for k, v in extra.items())
        print(f"   {name:<9} {'ok' if ok else 'FAILED'} in {seconds:.0f} s{counts}", flush=True)
        if not ok:
            print(_tail(logs / f"{name}.log"), flush=True)
        return ok

    # The cell's environment: exactly its releases plus what the tests need.
    install_cmd = (f"{shlex.quote(sys.executable)} -m venv {shlex.quote(str(venv))} && "
                   f"{shlex.quote(python)} -m pip install --quiet --upgrade pip && "
                   f"{shlex.quote(python)} -m pip install --quiet "
                   + " ".join(shlex.quote(r) for r in cell.requirements())
                   + " pytest hypothesis scikit-learn")
    ok, seconds = _run(["bash", "-c", install_cmd], logs / "install.log", timeout=2400)
    if ok:
        record.update(_installed_versions(python))
    if not step("install", ok, seconds):
        return _finish(record, start)

    # `make build` with the cell's venv, build folder and library path; `-o`
    # keeps make from running `make venv` there, which would install the
    # pinned set instead of the cell's.
    stamp = home / "installed.stamp"
    ok, seconds = _run(["make", "--no-print-directory", "-o", str(stamp), "build", f"VENV={venv}",
                        f"INSTALLED={stamp}", f"BUILD={home / 'build'}", f"CPU_LIB={library}"],
                       logs / "build.log", timeout=1800)
    if not step("build", ok, seconds):
        return _finish(record, start)

    env = dict(os.environ, RMSPROP_OP_LIBRARY=str(library), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    for name, paths, extra_env in TEST_STEPS:
        junit = logs / f"{name}.xml"
        ok, seconds = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            f"--junitxml={junit}", *paths],
                           logs / f"{name}.log", env=dict(env, **extra_env), timeout=3600)
        step(name, ok, seconds, **_junit_counts(junit))

    ok, seconds = _run([python, "-m", "keras_optimizer", "--epochs", "2", "--no-progress"],
                       logs / "demo.log", env=env, timeout=1800)
    if ok:  # the demo's own statement of the documented example must hold
        ok = "step_count = 1, var1 = 9.683772" in (logs / "demo.log").read_text()
    step("demo", ok, seconds)
    return _finish(record, start)


def _finish(record, start):
    record["seconds"] = round(time.monotonic() - start, 1)
    record["ok"] = all(s["ok"] for s in record["steps"].values()) and len(record["steps"]) == len(STEPS)
    # Beside the cell too, so that runs in parallel can be merged (--collect).
    (WORK / record["cell"] / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _load_results():
    if RESULTS.exists():
        return json.loads(RESULTS.read_text())
    return dict(cells=[])


def _cell_order(record):
    window = [c.name for c in WINDOW]
    name = record["cell"]
    return (window.index(name) if name in window else len(window), record["kind"], name)


def save(records, readme=True):
    """Merges new cell records into compat/results.json and the README table."""
    results = _load_results()
    by_name = {r["cell"]: r for r in results["cells"]}
    for record in records:
        by_name[record["cell"]] = record
    results = dict(
        python=platform.python_version(),
        machine=f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        updated=datetime.date.today().isoformat(),
        cells=sorted(by_name.values(), key=_cell_order),
    )
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if readme:
        write_readme_table(results)


def write_readme_table(results):
    table = markdown_table(results)
    text = README.read_text()
    pattern = re.compile(re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END), re.S)
    if pattern.search(text):
        README.write_text(pattern.sub(lambda _: f"{TABLE_BEGIN}\n{table}\n{TABLE_END}", text))


def _cell_text(step):
    if step is None:
        return "not run"
    if "passed" in step:
        text = f"{step['passed']} passed"
        if step.get("failed"):
            text += f", **{step['failed']} failed**"
        if step.get("skipped"):
            text += f", {step['skipped']} skipped"
    else:
        text = "ok" if step["ok"] else "**failed**"
    return f"{text} ({step['seconds']:.0f} s)"


def markdown_table(results):
    lines = [
        "| TensorFlow | Keras | tf_keras | build | op tests | Keras tests | tf_keras tests | demo | total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["cells"]:
        steps = r["steps"]
        tf_version = r.get("tensorflow") or r["cell"]
        if r["kind"] == "nightly":
            tf_version += " (nightly, best effort)"
        elif r["kind"] == "extra":
            tf_version += " (outside the window's list)"
        if not steps.get("install", {}).get("ok", False):
            lines.append(f"| {tf_version} | {r.get('keras', '?')} | {r.get('tf_keras', '?')} | "
                         "install failed |  |  |  |  |  |")
            continue
        lines.append(
            f"| {tf_version} | {r['keras']} | {r['tf_keras']} | "
            + " | ".join(_cell_text(steps.get(s)) for s in ("build", "op", "keras", "tf_keras", "demo"))
            + f" | {r['seconds'] / 60:.1f} min |")
    lines.append("")
    suites = ". ".join(f"{step} tests: " + ", ".join(p.replace("tests/", "") for p in paths)
                       for step, paths, _ in TEST_STEPS)
    lines.append(f"Python {results['python']}, {results['machine']}, CPU; "
                 f"last run {results['updated']}. {suites}.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tf", help="one TensorFlow release, e.g. 2.17.1")
    parser.add_argument("--keras", help="with --tf: one Keras release, e.g. 3.5.0")
    parser.add_argument("--cell", choices=["all", "window", "oldest", "newest", "nightly"],
                        default="all")
    parser.add_argument("--part", metavar="K/N",
                        help="only the K-th of N equal shares of the chosen cells (for parallel runs)")
    parser.add_argument("--fresh", action="store_true",
                        help="recreate the cells' virtual environments")
    parser.add_argument("--no-save", action="store_true",
                        help="do not write compat/results.json and the README table")
    parser.add_argument("--no-readme", action="store_true",
                        help="write compat/results.json but not the README table")
    parser.add_argument("--collect", action="store_true",
                        help="merge every .compat/*/record.json into the results, then stop")
    parser.add_argument("--readme-only", action="store_true",
                        help="only rewrite the README table from compat/results.json")
    args = parser.parse_args(argv)

    if args.collect:
        save([json.loads(p.read_text()) for p in sorted(WORK.glob("*/record.json"))],
             readme=not args.no_readme)
        return 0
    if args.readme_only:
        write_readme_table(_load_results())
        return 0
    if args.tf or args.keras:
        if not (args.tf and args.keras):
            parser.error("--tf and --keras go together")
        minor = args.tf.rsplit(".", 1)[0]
        known = [c for c in WINDOW if c.tensorflow == args.tf and c.keras == args.keras]
        cells = known or [Cell(args.tf, args.keras, TF_KERAS_OF_MINOR.get(minor, f"{minor}.0"),
                               kind="extra")]
    else:
        cells = dict(all=WINDOW + [NIGHTLY], window=WINDOW, oldest=WINDOW[:1],
                     newest=WINDOW[-1:], nightly=[NIGHTLY])[args.cell]

    if args.part:
        k, n = (int(x) for x in args.part.split("/"))
        cells = cells[k - 1::n]
    records = []
    for cell in cells:
        records.append(run_cell(cell, fresh=args.fresh))
        if not args.no_save:
            save(records, readme=not args.no_readme)
    if args.no_save:
        summary = dict(cells=records, python=platform.python_version(), machine="this machine",
                       updated=datetime.date.today().isoformat())
    else:
        summary = _load_results()
    print("\n" + markdown_table(summary))
    # Nightly is reported, not required.
    failed = [r["cell"] for r in records if not r["ok"] and r["kind"] != "nightly"]
    if failed:
        print(f"\ncompat: failed cells: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
