"""Compiler and linker flags for building the op library against the
TensorFlow installed in the running interpreter, and the lists of sources
(sources.bzl).

The single source of these flags: the Makefile and setup.py both ask this
script, so `make build` and `pip install .` build the same library.
"""
import argparse
import glob
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
# reason; -ftz=true flushes float subnormals as TensorFlow's CPU kernels (and
# its own GPU build) do; the CUDA half of the GPU library exports nothing (the
# registrations in the same library call it); --threads=0 compiles the
# architectures in parallel. The architectures are TensorFlow's (gencode()).
NVCCFLAGS = [
    "-O3", "-std=c++17", "-x", "cu", "--expt-relaxed-constexpr",
    "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden",
    "-Xcompiler", "-ffp-contract=off", "-fmad=false", "-ftz=true",
    "--threads=0", "-DGOOGLE_CUDA=1", "-DNDEBUG", "-DEIGEN_USE_GPU",
]
# What TensorFlow's GPU build lists where it cannot be asked (no CUDA build
# of TensorFlow installed, or the standalone checker's build without it).
DEFAULT_CUDA_ARCHS = ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLKIT_NVCC = os.path.join(ROOT, ".cuda", "bin", "nvcc")


def nvcc():
    """The nvcc to build with: $NVCC, else the toolkit tools/cuda_toolkit.py
    assembles; None when there is neither."""
    chosen = os.environ.get("NVCC") or TOOLKIT_NVCC
    return chosen if shutil.which(chosen) else None


def cuda_archs():
    """The architectures TensorFlow's GPU build has code for ("sm_XX" as
    machine code, "compute_XX" as PTX for newer GPUs)."""
    try:
        import tensorflow as tf
        archs = tf.sysconfig.get_build_info().get("cuda_compute_capabilities")
    except ImportError:
        archs = None
    return list(archs) if archs else DEFAULT_CUDA_ARCHS


def gencode(archs):
    """nvcc's -gencode flags for architectures named as in cuda_archs()."""
    flags = []
    for arch in archs:
        kind, number = arch.split("_")
        code = f"sm_{number}" if kind == "sm" else f"compute_{number}"
        flags.append(f"-gencode=arch=compute_{number},code={code}")
    return flags


def cuda_version(nvcc_path):
    """The CUDA release nvcc compiles for, e.g. "12.4"."""
    out = subprocess.run([nvcc_path, "--version"], capture_output=True, text=True).stdout
    return re.search(r"release (\d+\.\d+)", out).group(1)


def checked_cuda_version(nvcc_path):
    """cuda_version(nvcc_path), after checking that it is the CUDA major
    release TensorFlow's GPU build uses (code from another major one would
    need a runtime TensorFlow does not load)."""
    import tensorflow as tf
    release = cuda_version(nvcc_path)
    wanted = tf.sysconfig.get_build_info().get("cuda_version")
    if wanted and release.split(".")[0] != wanted.split(".")[0]:
        raise SystemExit(f"{nvcc_path} compiles for CUDA {release}, TensorFlow's GPU build uses "
                         f"CUDA {wanted}: build with a CUDA {wanted.split('.')[0]} nvcc "
                         "(tools/cuda_toolkit.py assembles one in .cuda/; or set NVCC)")
    return release


SOURCE_LISTS = {"cpu-sources": "CPU_SOURCES", "gpu-registration-sources": "GPU_REGISTRATION_SOURCES",
                "gpu-cuda-sources": "GPU_CUDA_SOURCES"}


def sources(name):
    """A list of sources.bzl (Starlark lists read as Python), e.g. "CPU_SOURCES"."""
    lists = {}
    with open(os.path.join(ROOT, "sources.bzl")) as f:
        exec(f.read(), {}, lists)  # noqa: S102 - our own file of list literals
    return lists[name]


def llvm_include_flags(tf_include):
    """TensorFlow 2.19's GPU headers include LLVM headers that its pip package
    lacks (stream_executor/gpu/tma_metadata.h includes llvm/ADT/ArrayRef.h;
    tensorflow/tensorflow#90026). Only declarations of a type the kernels never
    touch need them, so the system's LLVM headers (Debian's llvm-dev) serve:
    [] where TensorFlow needs none, else the -isystem flag of the newest."""
    needs = os.path.join(tf_include, "xla", "stream_executor", "gpu", "tma_metadata.h")
    if not os.path.exists(needs) or os.path.exists(os.path.join(tf_include, "llvm", "ADT")):
        return []
    with open(needs) as f:
        if '#include "llvm/' not in f.read():
            return []
    found = sorted(glob.glob("/usr/lib/llvm-*/include/llvm/ADT/ArrayRef.h"),
                   key=lambda p: int(re.search(r"llvm-(\d+)", p).group(1)))
    if not found:
        sys.exit("TensorFlow's GPU headers include LLVM headers it does not ship: install them "
                 "(Debian and Ubuntu: `apt-get install llvm-dev`) to build the GPU library")
    return ["-isystem", found[-1].split("/llvm/ADT/")[0]]


def xla_support(tf_include):
    """Whether this TensorFlow lets an out-of-tree library add XLA kernels
    that call our functors through XLA's typed FFI (rmsprop_op/cc/kernels/xla/):
    (True, "") or (False, why not). The one place this is decided; the
    library then reports it (rmsprop_op.xla_kernels_available())."""
    needs = {"xla/ffi/api/ffi.h": "XLA's typed FFI", "tensorflow/compiler/tf2xla/xla_op_kernel.h": "tf2xla",
             "xla/hlo/builder/xla_builder.h": "XLA's builder"}
    for header, what in needs.items():
        if not os.path.exists(os.path.join(tf_include, header)):
            return False, f"its headers lack {what} ({header})"
    with open(os.path.join(tf_include, "xla/ffi/api/ffi.h")) as f:
        if "class ThreadPool" not in f.read():
            return False, "its typed FFI has no thread pool for CPU handlers"
    if not os.path.exists(os.path.join(os.path.dirname(tf_include), "libtensorflow_cc.so.2")):
        return False, "it ships no libtensorflow_cc.so.2"
    return True, ""


def xla_flags(tf_include):
    """The extra compile flags of the XLA kernels, [] where unsupported."""
    if not xla_support(tf_include)[0]:
        return []
    external = os.path.join(tf_include, "external")
    return ["-DRMSPROP_OP_XLA=1", f"-I{external}/highwayhash", f"-I{external}/farmhash_archive/src"]


def tensorflow_flags():
    import tensorflow as tf  # imported late: `--help` must work without it
    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(), tf.__version__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["cxxflags", "nvccflags", "ldflags", "gpu-cxxflags",
                                         "gpu-ldflags", "version", "nvcc", "cuda-check-flags",
                                         *SOURCE_LISTS])
    args = parser.parse_args(argv)
    # These need no TensorFlow.
    if args.what in SOURCE_LISTS:
        print(" ".join(sources(SOURCE_LISTS[args.what])))
        return
    if args.what == "nvcc":
        print(nvcc() or "")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.what == "cuda-check-flags":
        # The checker: the library's flags and architectures, and the
        # toolkit's own runtime (it runs without TensorFlow).
        print(shlex.join(NVCCFLAGS + gencode(cuda_archs())))
        return
    compile_flags, link_flags, version = tensorflow_flags()
    # The loader reads this stamp back to tell a stale library from a good one.
    stamp = f'-DRMSPROP_OP_TF_VERSION="{version}"'
    include = next(f[2:] for f in compile_flags if f.startswith("-I"))
    if args.what == "cxxflags":
        flags = CXXFLAGS + compile_flags + [stamp, "-I."] + xla_flags(include)
    elif args.what == "nvccflags":
        flags = (NVCCFLAGS + gencode(cuda_archs())
                 + [f for f in compile_flags if f != "--std=c++17"] + [stamp, "-I."])
    elif args.what == "ldflags":
        # The XLA kernels' base classes live in libtensorflow_cc.
        flags = link_flags + (["-l:libtensorflow_cc.so.2"] if xla_flags(include) else [])
    elif args.what == "gpu-cxxflags":
        # The registrations compile against the CUDA headers TensorFlow ships,
        # which match the CUDA structures TensorFlow hands over. The CUDA
        # release and architectures stamped here are what the loader checks
        # the driver and the GPUs against.
        archs = " ".join(cuda_archs())
        flags = CXXFLAGS + compile_flags + [
            stamp, f'-DRMSPROP_OP_CUDA_VERSION="{checked_cuda_version(nvcc())}"',
            f'-DRMSPROP_OP_CUDA_ARCHS="{archs}"', "-I.",
            "-DGOOGLE_CUDA=1", "-DEIGEN_USE_GPU",
            f"-I{include}/third_party/gpus/cuda/include", *llvm_include_flags(include),
            *xla_flags(include)]
    elif args.what == "gpu-ldflags":
        # No CUDA runtime of our own: libtensorflow_framework exports the
        # runtime's API (forwarding to the libcudart TensorFlow loads), so the
        # kernels run on TensorFlow's CUDA runtime, as TensorFlow's own do.
        # --no-undefined proves that every CUDA call resolves there.
        flags = (link_flags + (["-l:libtensorflow_cc.so.2"] if xla_flags(include) else [])
                 + ["-ldl", "-lrt", "-lpthread", "-Wl,--no-undefined"])
    else:
        flags = [version]
    print(shlex.join(flags))


if __name__ == "__main__":
    sys.exit(main())
