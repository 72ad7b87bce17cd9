"""Builds the op libraries against the TensorFlow installed in the build
environment (use `pip install --no-build-isolation .` in the environment that
will run it, so that the versions match)."""
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = "rmsprop_op/cc/kernels"
CPU_SOURCES = ["rmsprop_op/cc/ops/rmsprop_ops.cc", f"{KERNELS}/rmsprop_cpu_kernels.cc"]
GPU_CC_SOURCES = [f"{KERNELS}/rmsprop_gpu_kernels.cc"]
GPU_CU_SOURCES = [f"{KERNELS}/rmsprop_gpu_functors.cu.cc"]


def _flags(what):
    # The same script the Makefile asks, so both builds use the same flags.
    out = subprocess.run([sys.executable, os.path.join(HERE, "tools", "tf_build_flags.py"), what],
                         check=True, capture_output=True, text=True, cwd=HERE).stdout
    return shlex.split(out.strip().splitlines()[-1])


class BuildTensorFlowOps(build_ext):
    """Compiles with TensorFlow's flags and names the libraries `<name>.so`,
    without the Python ABI suffix, as tf.load_op_library expects them."""

    def get_ext_filename(self, fullname):
        return os.path.join(*fullname.split(".")) + ".so"

    def build_extension(self, ext):
        output = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(output), exist_ok=True)
        try:
            if ext.name.endswith("_gpu_kernels"):
                self._build_gpu(ext, output)
            else:
                self._compile_and_link(ext.sources, [], output)
        except (subprocess.CalledProcessError, OSError) as e:
            if ext.optional:
                print(f"warning: skipping optional {ext.name}: {e}")
                return
            raise

    def _compile_and_link(self, cc_sources, extra_objects, output, cflags=None, ldflags=None):
        cxx = os.environ.get("CXX", "g++")
        cflags = _flags("cxxflags") if cflags is None else cflags
        ldflags = _flags("ldflags") if ldflags is None else ldflags
        objects = []
        for source in cc_sources:
            obj = os.path.join(self.build_temp, source + ".o")
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            self.spawn([cxx, *cflags, "-c", source, "-o", obj])
            objects.append(obj)
        self.spawn([cxx, "-shared", *objects, *extra_objects, "-o", output, *ldflags])

    def _build_gpu(self, ext, output):
        import tensorflow as tf
        nvcc = shutil.which("nvcc")
        if nvcc is None or not tf.test.is_built_with_cuda():
            print("note: nvcc or a CUDA-enabled TensorFlow not found; building CPU kernels only")
            return
        cu_objects = []
        for source in GPU_CU_SOURCES:
            obj = os.path.join(self.build_temp, source + ".o")
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            self.spawn([nvcc, *_flags("nvccflags"), "-c", source, "-o", obj])
            cu_objects.append(obj)
        self._compile_and_link(ext.sources, cu_objects, output, _flags("gpu-cxxflags"),
                               _flags("gpu-ldflags"))

setup(
    name="rmsprop-op",
    version="0.1.0",
    description="Fused RMSProp updates for TensorFlow and a drop-in Keras RMSprop",
    packages=find_packages(include=["rmsprop_op", "keras_optimizer"]),
    python_requires=">=3.9",
    install_requires=["tensorflow==2.21.0", "keras>=3.12"],
    ext_modules=[
        Extension("rmsprop_op._rmsprop_ops", CPU_SOURCES),
        Extension("rmsprop_op._rmsprop_gpu_kernels", GPU_CC_SOURCES, optional=True),
    ],
    cmdclass={"build_ext": BuildTensorFlowOps},
    zip_safe=False,
)
