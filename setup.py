"""Builds the op libraries against the TensorFlow installed in the build
environment: `pip install --no-build-isolation .` in the environment that will
run them, or `make wheel` for a wheel. TensorFlow's C++ ABI changes with every
minor release, so the package requires the minor it was built against and
says so in its version (e.g. 0.2.0+tf2.21)."""
import concurrent.futures
import importlib.metadata
import os
import runpy
import shlex
import subprocess
import sys
import threading

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
VERSIONS = runpy.run_path(os.path.join(HERE, "rmsprop_op", "_versions.py"))
BUILD_FLAGS = runpy.run_path(os.path.join(HERE, "tools", "tf_build_flags.py"))
NO_TENSORFLOW = """
rmsprop-op compiles its op library against the TensorFlow of the environment
it is installed into, so TensorFlow must be installed there first, and pip must
build without an isolated build environment:

    pip install "tensorflow>=2.16" "setuptools>=70.1"
    pip install --no-build-isolation .

(or install a wheel built for your TensorFlow; see README.md, "Installation").
"""
CPU_SOURCES = BUILD_FLAGS["sources"]("CPU_SOURCES")
GPU_CC_SOURCES = BUILD_FLAGS["sources"]("GPU_REGISTRATION_SOURCES")
GPU_CU_SOURCES = BUILD_FLAGS["sources"]("GPU_CUDA_SOURCES")


def _flags(what):
    # The same script the Makefile asks, so both builds use the same flags.
    out = subprocess.run([sys.executable, os.path.join(HERE, "tools", "tf_build_flags.py"), what],
                         check=True, capture_output=True, text=True, cwd=HERE).stdout
    return shlex.split(out.strip().splitlines()[-1])


def _distribution_of(module):
    """(distribution name, version) that provides `module`, e.g. ("tf-nightly",
    "2.23.0.dev20261026") for tensorflow; None when it is not installed."""
    names = importlib.metadata.packages_distributions().get(module, [])
    for name in names:
        return name, importlib.metadata.version(name)
    return None


def _requirements():
    """The TensorFlow minor this build is for, as (version label, install_requires,
    tf_keras requirement)."""
    found = _distribution_of("tensorflow")
    if found is None:
        sys.exit(NO_TENSORFLOW)
    dist, version = found
    release = VERSIONS["release"](version)
    if release < VERSIONS["MIN_TENSORFLOW"]:
        sys.exit(f"TensorFlow {version} is installed; rmsprop-op supports {VERSIONS['SUPPORTED']}.")
    major, minor = release
    label = VERSIONS["package_version"](version)
    if VERSIONS["is_prerelease"](version):
        # A nightly's ABI changes from one build to the next: only itself.
        return label, [f"{dist}=={version}"], []
    within_minor = f">={major}.{minor},<{major}.{minor + 1}"
    keras = _distribution_of("keras")
    keras_dist = keras[0] if keras else "keras"
    requires = [f"{dist}{within_minor}"]
    if keras_dist == "keras":
        requires.append("keras>={}.{}".format(*VERSIONS["MIN_KERAS"]))
    return label, requires, [f"tf-keras{within_minor}"]


def _in_development_environment():
    """True when setup.py runs in the Makefile's own environment (.venv of
    this tree), whose libraries `make` builds."""
    venv = os.path.join(HERE, ".venv")
    return (os.path.isdir(venv) and os.path.exists(os.path.join(HERE, "Makefile"))
            and os.path.realpath(sys.prefix) == os.path.realpath(venv))


_MADE = []
_MAKING = threading.Lock()  # the two libraries build in parallel threads; one make


def _make_libraries():
    with _MAKING:
        if _MADE:
            return
        # Not the jobserver of a make that started this build: its descriptors
        # do not reach here through pip.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        subprocess.run(["make", "--no-print-directory", "build", "cuda-compile-check"],
                       cwd=HERE, env=env, check=True)
        _MADE.append(True)


class PlatformWheel(bdist_wheel):
    """The libraries load into any Python that runs this TensorFlow: they link
    TensorFlow's C++ library, not Python's, so the wheel is `py3-none-<platform>`."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class BuildTensorFlowOps(build_ext):
    """Compiles with TensorFlow's flags and names the libraries `<name>.so`,
    without the Python ABI suffix, as tf.load_op_library expects them."""

    def get_ext_filename(self, fullname):
        return os.path.join(*fullname.split(".")) + ".so"

    def build_extension(self, ext):
        output = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(output), exist_ok=True)
        if _in_development_environment():
            self._copy_from_make(ext, output)
            return
        try:
            if ext.name.endswith("_gpu_kernels"):
                self._build_gpu(ext, output)
            else:
                self._compile_and_link(ext.sources, output)
        except (subprocess.CalledProcessError, OSError) as e:
            if ext.optional:
                print(f"warning: skipping optional {ext.name}: {e}")
                return
            raise

    def _copy_from_make(self, ext, output):
        """The library `make` builds in the tree: the same sources and flags
        (both ask tools/tf_build_flags.py), and make rebuilds only what is
        out of date, so a wheel of the development environment (`make
        wheel`) costs no second compilation."""
        _make_libraries()
        built = os.path.join(HERE, *ext.name.split(".")) + ".so"
        if not os.path.exists(built):
            if ext.optional:  # make builds the GPU library only for a CUDA build of TensorFlow
                print(f"note: make built no {ext.name}; building CPU kernels only")
                return
            sys.exit(f"make did not build {built}")
        self.copy_file(built, output)

    def _compile_and_link(self, cc_sources, output):
        cxx = os.environ.get("CXX", "g++")
        cflags, ldflags = _flags("cxxflags"), _flags("ldflags")
        objects = self._compile_all([[cxx, *cflags, "-c", source] for source in cc_sources],
                                    cc_sources)
        self.spawn([cxx, "-shared", *objects, "-o", output, *ldflags])

    def _compile_all(self, commands, sources):
        """Runs `command -o <object>` for each source, side by side (one per
        core: the translation units are independent and each takes minutes),
        and returns the objects."""
        objects = [os.path.join(self.build_temp, source + ".o") for source in sources]
        for obj in objects:
            os.makedirs(os.path.dirname(obj), exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            for done in [pool.submit(self.spawn, [*command, "-o", obj])
                         for command, obj in zip(commands, objects)]:
                done.result()
        return objects

    def _build_gpu(self, ext, output):
        import tensorflow as tf
        nvcc = BUILD_FLAGS["nvcc"]()
        if not tf.test.is_built_with_cuda():
            print("note: TensorFlow is not a CUDA build; building CPU kernels only")
            return
        if nvcc is None:
            print("note: no CUDA 12 nvcc (run `python tools/cuda_toolkit.py`, which assembles one "
                  "in .cuda/, or set NVCC); building CPU kernels only")
            return
        cxx = os.environ.get("CXX", "g++")
        nvcc_flags, cxx_flags = _flags("nvccflags"), _flags("gpu-cxxflags")
        # nvcc's units and the host units compile side by side too.
        sources = [*GPU_CU_SOURCES, *ext.sources]
        commands = ([[nvcc, *nvcc_flags, "-c", source] for source in GPU_CU_SOURCES]
                    + [[cxx, *cxx_flags, "-c", source] for source in ext.sources])
        objects = self._compile_all(commands, sources)
        self.spawn([cxx, "-shared", *objects, "-o", output, *_flags("gpu-ldflags")])

PACKAGE_VERSION, INSTALL_REQUIRES, TF_KERAS = _requirements()

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    README = f.read()

setup(
    name="rmsprop-op",
    version=PACKAGE_VERSION,
    description="Fused RMSProp updates for TensorFlow and a drop-in Keras RMSprop",
    long_description=README,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    keywords=["tensorflow", "keras", "optimizer", "rmsprop", "custom op", "cuda"],
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: C++",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=find_packages(include=["rmsprop_op", "keras_optimizer"]),
    python_requires=">=3.9",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "demo": ["scikit-learn"],  # python -m keras_optimizer's data set
        "legacy": TF_KERAS,  # keras_optimizer.legacy (Keras 2)
    },
    ext_modules=[
        Extension("rmsprop_op._rmsprop_ops", CPU_SOURCES),
        Extension("rmsprop_op._rmsprop_gpu_kernels", GPU_CC_SOURCES, optional=True),
    ],
    cmdclass={"build_ext": BuildTensorFlowOps, "bdist_wheel": PlatformWheel},
    # setuptools' work folders beside, not inside, `make build`'s objects.
    # The CPU and GPU libraries build side by side.
    options={"build": {"build_base": "out/setuptools"},
             "build_ext": {"parallel": os.cpu_count() or 1}},
    zip_safe=False,
)
