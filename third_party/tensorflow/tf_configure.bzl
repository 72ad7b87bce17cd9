"""Points Bazel at the TensorFlow installed in a Python environment.

`tf_configure(name = "local_config_tf")` runs that environment's Python and
asks tools/tf_build_flags.py (the script the Makefile and setup.py ask too)
for the compiler and linker flags, then makes a repository with

    @local_config_tf//:tf_header_lib               TensorFlow's headers
    @local_config_tf//:libtensorflow_framework     libtensorflow_framework.so.2
    @local_config_tf//:py_toolchain                that Python, as Bazel's
                                                   Python toolchain
    @local_config_tf//:build_defs.bzl              TF_COPTS (our flags and
                                                   TensorFlow's, the include
                                                   path aside), TF_VERSION

The Python is $PYTHON_BIN_PATH, else `.venv/bin/python` beside
tools/tf_build_flags.py, else `python3` on the PATH. The repository is made
again when PYTHON_BIN_PATH or a file in `watch` changes, and on
`bazel sync --configure`; after installing another TensorFlow into the same
environment, run the latter (a stale library is refused by the loader).
"""

# One TensorFlow import answers every question; tf_build_flags prints each
# answer as a shell-quoted line.
_ASK = """
import contextlib, io, json, os, shlex, sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import tf_build_flags


def ask(what):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tf_build_flags.main([what])
    return shlex.split(out.getvalue().strip().splitlines()[-1])


print("TF_CONFIG=" + json.dumps({what: ask(what) for what in ("cxxflags", "ldflags", "version")}))
"""

# Characters that survive Bazel's Bourne-shell tokenization of copts as they are.
_SHELL_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+.,/:@%"

def _shell_quote(flag):
    for c in flag.elems():
        if c not in _SHELL_SAFE:
            return "'" + flag.replace("'", "'\\''") + "'"
    return flag

def _fail(msg):
    fail("\ntf_configure: " + msg + "\n")

def _python(ctx, root):
    python = ctx.os.environ.get("PYTHON_BIN_PATH", "")
    if python:
        # A relative path is taken from the workspace root (the directory
        # bazel was started in is not known here).
        return python if python.startswith("/") else "{}/{}".format(root, python)
    venv = ctx.path("{}/.venv/bin/python".format(root))
    if venv.exists:
        return str(venv)
    found = ctx.which("python3")
    if found == None:
        _fail("no Python found: set PYTHON_BIN_PATH to a Python with TensorFlow installed.")
    return str(found)

def _tf_configure_impl(ctx):
    flags_script = ctx.path(ctx.attr.flags_script)
    for label in ctx.attr.watch:
        ctx.path(label)  # a file resolved through a label is an input of this rule
    python = _python(ctx, flags_script.dirname.dirname)

    result = ctx.execute([python, "-c", _ASK, str(flags_script)], timeout = 300, quiet = True)
    lines = [l for l in result.stdout.splitlines() if l.startswith("TF_CONFIG=")]
    if result.return_code != 0 or not lines:
        _fail(("{} could not report TensorFlow's build flags; is TensorFlow installed " +
               "there? (PYTHON_BIN_PATH names the Python to build for)\n{}").format(
            python,
            (result.stdout + result.stderr)[-3000:],
        ))
    config = json.decode(lines[-1][len("TF_CONFIG="):])
    version = config["version"][0]

    # The include path becomes the header library's; `-I.` is Bazel's own
    # (it compiles from the workspace root); every other flag is kept.
    include_dirs = []
    copts = []
    for flag in config["cxxflags"]:
        if flag.startswith("-I") and flag != "-I.":
            include_dirs.append(flag[2:])
        elif flag != "-I.":
            copts.append(flag)
    if len(include_dirs) != 1:
        _fail("expected one TensorFlow include directory in {}".format(config["cxxflags"]))

    # TensorFlow links against one library (`-L<dir>
    # -l:libtensorflow_framework.so.2`); it becomes a cc_library.
    ldflags = config["ldflags"]
    lib_dirs = [f[2:] for f in ldflags if f.startswith("-L")]
    libs = [f[3:] if f.startswith("-l:") else "lib{}.so".format(f[2:])
            for f in ldflags if f.startswith("-l")]
    linkopts = [f for f in ldflags if not f.startswith("-L") and not f.startswith("-l")]
    found = [(d + "/" + lib, lib) for lib in libs for d in lib_dirs if ctx.path(d + "/" + lib).exists]
    if len(libs) != 1 or len(found) != 1:
        _fail("expected libtensorflow_framework, and only that, from {}".format(ldflags))
    framework = found[0]

    ctx.symlink(include_dirs[0], "include")
    ctx.symlink(framework[0], framework[1])

    ctx.file("build_defs.bzl", "\n".join([
        '"""TensorFlow {} as installed for {}."""'.format(version, python),
        "",
        "TF_VERSION = {}".format(json.encode(version)),
        "",
        "# Shell-quoted, as Bazel tokenizes copts and linkopts like a shell.",
        "TF_COPTS = {}".format(json.encode([_shell_quote(f) for f in copts])),
        "",
        "TF_LINKOPTS = {}".format(json.encode([_shell_quote(f) for f in linkopts])),
        "",
    ]))

    ctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

exports_files(["build_defs.bzl"])

# Subdirectories with a BUILD file of their own (vendored CUDA headers) are
# left out by the glob; the CPU library needs none of them.
cc_library(
    name = "tf_header_lib",
    hdrs = glob(["include/**"]),
    includes = ["include"],
)

cc_library(
    name = "libtensorflow_framework",
    srcs = [{framework}],
)

py_runtime(
    name = "python3",
    interpreter_path = {python},
    python_version = "PY3",
)

py_runtime_pair(
    name = "py_runtime_pair",
    py3_runtime = ":python3",
)

toolchain(
    name = "py_toolchain",
    toolchain = ":py_runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(framework = json.encode(framework[1]), python = json.encode(python)))

tf_configure = repository_rule(
    implementation = _tf_configure_impl,
    attrs = {
        "flags_script": attr.label(
            default = Label("//:tools/tf_build_flags.py"),
            allow_single_file = True,
            doc = "The script that prints the build flags (tools/tf_build_flags.py).",
        ),
        "watch": attr.label_list(
            allow_files = True,
            doc = "Files whose change means another TensorFlow (the pinned requirements).",
        ),
    },
    environ = ["PYTHON_BIN_PATH"],
    configure = True,
    doc = "Makes a repository with the installed TensorFlow's headers, framework " +
          "library, build flags and Python.",
)
