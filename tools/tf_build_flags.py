"""Compiler and linker flags for building the op library against the
TensorFlow installed in the running interpreter.

The single source of these flags: the Makefile and setup.py both ask this
script, so `make build` and `pip install .` build the same library.
"""
import argparse
import os
import shlex
import sys

# Flags of our own, on top of TensorFlow's. -ffp-contract=off keeps
# a*b + c as two roundings, as TensorFlow's and Keras's kernels compute it;
# -fno-math-errno lets sqrt vectorize.
CXXFLAGS = [
    "-O3", "-fPIC", "-Wall", "-Wno-sign-compare", "-Wno-deprecated-declarations", "-fno-math-errno", "-ffp-contract=off",
    "-fvisibility-inlines-hidden",
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


def tensorflow_flags():
    import tensorflow as tf  # imported late: `--help` must work without it
    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(), tf.__version__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["cxxflags", "nvccflags", "ldflags", "version"])
    args = parser.parse_args(argv)
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
    else:
        flags = [version]
    print(shlex.join(flags))


if __name__ == "__main__":
    sys.exit(main())
