"""Python in a child process, for what one interpreter cannot show: a fresh
TensorFlow runtime (devices, a cluster, TF_USE_LEGACY_KERAS), an import that
must fail, a program run as a user runs it, a process killed midway.

Tests that use these carry the `subprocess` marker (pyproject.toml).
"""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_env(changes=None):
    """os.environ with `changes` applied; a value of None removes the variable."""
    env = dict(os.environ)
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _command(args):
    if isinstance(args, str):
        return [sys.executable, "-c", textwrap.dedent(args)]
    return [sys.executable, *map(str, args)]


def run_python(args, env=None, cwd=ROOT, timeout=300, merge_output=False):
    """Runs this interpreter to the end and returns its CompletedProcess.

    `args`: the arguments after the interpreter, or a string, a program for
    `-c` (dedented). `env`: changes to os.environ (see python_env). Output is
    text; with `merge_output` stderr goes into stdout, in the order written."""
    return subprocess.run(_command(args), env=python_env(env), cwd=cwd, text=True,
                          timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merge_output else subprocess.PIPE)


def start_python(args, log, env=None, cwd=ROOT, new_session=False):
    """Starts this interpreter and returns its Popen, stdout and stderr both
    written to the file `log` (a pipe could fill and block it). With
    `new_session` it leads a process group of its own, so that whatever it
    starts can be killed with it."""
    with open(log, "w") as out:
        return subprocess.Popen(_command(args), env=python_env(env), cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=new_session)
