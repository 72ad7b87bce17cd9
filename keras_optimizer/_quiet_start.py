"""What `python -m keras_optimizer` (the demo) does before TensorFlow loads:
TensorFlow's C++ start-up lines (absl's pre-initialization notice, CUDA
probing on a machine without a GPU, CPU-feature notes) would be a newcomer's
first output and look like failures. Importing the package does none of this.
"""
import contextlib
import os
import re
import sys
import tempfile

# Lines TensorFlow prints while it starts and probes for a GPU; every other
# line captured meanwhile is printed as it came.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|"
    r"cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc|cuda_executor\.cc|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"failed call to cuInit|cpu_feature_guard\.cc|To enable the following instructions|"
    r"rebuild TensorFlow with the appropriate compiler flags|oneDNN custom operations are on|"
    r"TF_ENABLE_ONEDNN_OPTS|computation placer already registered|TF-TRT Warning|"
    r"Attempting to register factory for plugin")


def running_the_demo():
    """True while `python -m keras_optimizer` imports the package: Python sets
    sys.argv[0] to "-m" until the module is found."""
    argv = getattr(sys, "orig_argv", [])
    return (sys.argv[:1] == ["-m"] and "-m" in argv
            and argv[argv.index("-m") + 1:argv.index("-m") + 2] == ["keras_optimizer"])


@contextlib.contextmanager
def _stderr_without_noise():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def start_tensorflow_quietly():
    """Imports TensorFlow and finds its devices with the noise above left out,
    and keeps its C++ INFO and WARNING lines off for the rest of the demo."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_without_noise():
        import tensorflow as tf
        tf.config.list_physical_devices()
