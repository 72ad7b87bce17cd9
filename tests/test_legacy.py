"""keras_optimizer.legacy.RMSprop, the tf_keras (Keras 2) optimizer.

tf_keras must be what `tf.keras` is, which TensorFlow decides once, at import,
from TF_USE_LEGACY_KERAS; this process already runs Keras 3. So the tf_keras
suite (tests/legacy_suite/) runs in a child process with the variable set.
"""
import os

import pytest

from tests.processes import run_python

pytestmark = pytest.mark.subprocess


def _run(args, legacy, timeout):
    env = dict(TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1" if legacy else None)
    result = run_python(args, env=env, timeout=timeout, merge_output=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}"
    return result.stdout


def test_importing_keras_optimizer_does_not_import_tf_keras():
    _run(["-c", "import sys, keras_optimizer; "
                "assert 'tf_keras' not in sys.modules, 'keras_optimizer imported tf_keras'"],
         legacy=False, timeout=300)


@pytest.mark.slow
def test_tf_keras_suite():
    # The long hypothesis profile (`make fuzz`) runs its differential harness
    # for about ten minutes more.
    long = os.environ.get("HYPOTHESIS_PROFILE") == "long"
    _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/legacy_suite"],
         legacy=True, timeout=3 * 3600 if long else 600)
