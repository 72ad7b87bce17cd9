"""What `python -m keras_optimizer` (the demo) does before TensorFlow loads:
TensorFlow's C++ start-up lines (absl's pre-initialization notice, CUDA
probing on a machine without a GPU, CPU-feature notes) would be a newcomer's
first output and look like failures. Importing the package does none of this.
"""
import contextlib
import os
import re
import sys
import threading

# Lines TensorFlow prints while it starts and probes for a GPU: information
# and warnings of known sources, and the one error of the CUDA probe on a
# machine without a GPU. Every other line (a fatal one above all) passes.
_NOISE = re.compile(
    rb"^WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|^[IW]\d{4} .*\b(cudart_stub|cuda_platform|cuda_dnn|cuda_fft|cuda_blas|cuda_executor|"
    rb"cpu_feature_guard|port)\.cc"
    rb"|^E\d{4} .*(failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory)"
    rb"|^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler")


def running_the_demo():
    """True while `python -m keras_optimizer` imports the package: Python sets
    sys.argv[0] to "-m" until the module is found."""
    argv = getattr(sys, "orig_argv", [])  # Python 3.10 and newer
    named = any(a == "-mkeras_optimizer" or (a == "-m" and b == "keras_optimizer")
                for a, b in zip(argv, argv[1:] + [""]))
    return sys.argv[:1] == ["-m"] and named


@contextlib.contextmanager
def _stderr_without_noise():
    """File descriptor 2 (TensorFlow's C++ logging writes there) through a
    pipe whose lines a thread passes on as they come, noise left out, so
    that a crash meanwhile loses nothing."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not _NOISE.search(line):
                    os.write(saved, line)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the thread sees its end
        thread.join()
        os.close(saved)


def start_tensorflow_quietly():
    """Imports TensorFlow and finds its devices with the noise above left out,
    and keeps its C++ INFO and WARNING lines off for the rest of the demo."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_without_noise():
        import tensorflow as tf
        tf.config.list_physical_devices()
