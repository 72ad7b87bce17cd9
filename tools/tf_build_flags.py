"""Compiler and linker flags for building the op library against the
TensorFlow installed in the running interpreter, and the lists of sources
(sources.bzl).

The single source of these flags: the Makefile and setup.py both ask this
script, so `make build` and `pip install .` build the same library.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys

# Flags of our own, on top of TensorFlow's. -ffp-contract=off keeps
# a*b + c as two roundings, as TensorFlow's and Keras's kernels compute it;
# -fno-math-errno lets sqrt vectorize. -Wno-psabi: GCC notes that the formula
# instantiated on AVX-512 vectors would pass them differently out of line,
# but every such instance is inlined into an AVX-512 function.
# -Wno-interference-size: GCC 12 warns about every use of
# hardware_destructive_interference_size in TensorFlow's (Eigen's) headers.
CXXFLAGS = [
    "-O3", "-fPIC", "-Wall", "-Wno-sign-compare", "-Wno-deprecated-declarations", "-fno-math-errno", "-ffp-contract=off",
    "-fvisibility-inlines-hidden", "-Wno-psabi", "-Wno-interference-size",
]
# nvcc: -fmad=false and the host compiler's -ffp-contract=off for the same
# reason; the CUDA half of the GPU library exports nothing (the registrations
# in the same library call it); --threads=0 compiles the architectures in
# parallel.
NVCCFLAGS = [
    "-O3", "-std=c++17", "-x", "cu", "--expt-relaxed-constexpr",
    "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden",
    "-Xcompiler", "-ffp-contract=off", "-fmad=false",
    "--threads=0", "-DGOOGLE_CUDA=1", "-DNDEBUG", "-DEIGEN_USE_GPU",
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_90,code=compute_90",
]


def cuda_home(nvcc="nvcc"):
    """The CUDA toolkit nvcc belongs to (nvcc may be a wrapper script
    elsewhere on the PATH, so ask it rather than its location)."""
    out = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-E", os.devnull],
                         capture_output=True, text=True).stderr
    match = re.search(r"TOP=(\S+)", out)
    return match.group(1) if match else os.path.dirname(os.path.dirname(shutil.which(nvcc)))


def cuda_version(nvcc="nvcc"):
    """The CUDA release nvcc compiles for, e.g. "13.0"."""
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    return re.search(r"release (\d+\.\d+)", out).group(1)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_LISTS = {"cpu-sources": "CPU_SOURCES", "gpu-registration-sources": "GPU_REGISTRATION_SOURCES",
                "gpu-cuda-sources": "GPU_CUDA_SOURCES"}


def sources(name):
    """A list of sources.bzl (Starlark lists read as Python), e.g. "CPU_SOURCES"."""
    lists = {}
    with open(os.path.join(ROOT, "sources.bzl")) as f:
        exec(f.read(), {}, lists)  # noqa: S102 - our own file of list literals
    return lists[name]


def tensorflow_flags():
    import tensorflow as tf  # imported late: `--help` must work without it
    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(), tf.__version__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["cxxflags", "nvccflags", "ldflags", "gpu-cxxflags",
                                         "gpu-ldflags", "version", "cuda-check-flags",
                                         *SOURCE_LISTS])
    args = parser.parse_args(argv)
    # These need no TensorFlow.
    if args.what in SOURCE_LISTS:
        print(" ".join(sources(SOURCE_LISTS[args.what])))
        return
    if args.what == "cuda-check-flags":
        print(shlex.join(NVCCFLAGS))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    compile_flags, link_flags, version = tensorflow_flags()
    # The loader reads this stamp back to tell a stale library from a good one.
    stamp = f'-DRMSPROP_OP_TF_VERSION="{version}"'
    if args.what == "cxxflags":
        flags = CXXFLAGS + compile_flags + [stamp, "-I."]
    elif args.what == "nvccflags":
        flags = NVCCFLAGS + [f for f in compile_flags if f != "--std=c++17"] + [stamp, "-I."]
    elif args.what == "ldflags":
        flags = link_flags
    elif args.what == "gpu-cxxflags":
        # The registrations compile against the CUDA headers TensorFlow ships,
        # which match the CUDA structures TensorFlow hands over. The CUDA
        # release stamped here is what the loader checks the driver against.
        include = next(f[2:] for f in compile_flags if f.startswith("-I"))
        flags = CXXFLAGS + compile_flags + [
            stamp, f'-DRMSPROP_OP_CUDA_VERSION="{cuda_version()}"', "-I.",
            "-DGOOGLE_CUDA=1", "-DEIGEN_USE_GPU",
            f"-I{include}/third_party/gpus/cuda/include"]
    elif args.what == "gpu-ldflags":
        # The CUDA runtime is linked statically and kept private, before
        # TensorFlow: libtensorflow_framework exports stubs of the runtime
        # that forward to TensorFlow's own CUDA version, which need not be the
        # one nvcc compiled for.
        flags = [f"-L{cuda_home()}/lib64", "-lcudart_static"] + link_flags + [
            "-ldl", "-lrt", "-lpthread", "-Wl,--exclude-libs,ALL", "-Wl,--no-undefined"]
    else:
        flags = [version]
    print(shlex.join(flags))


if __name__ == "__main__":
    sys.exit(main())
