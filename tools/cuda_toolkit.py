"""Assembles the CUDA 12 toolkit that the GPU library is built with, in
.cuda/ at the top of the tree (git-ignored): `python tools/cuda_toolkit.py`
prints the path of its nvcc.

TensorFlow's Linux wheels are built with CUDA 12 (`tf.sysconfig.
get_build_info()["cuda_version"]`; 12.5.1 for 2.21), and code built with one
CUDA 12 release runs with the runtime of any later one. PyPI's
nvidia-cuda-nvcc-cu12 wheels hold ptxas and the compiler's headers but not its
front end (cicc, cudafe++), so the compiler comes from Debian's packaging of
CUDA 12.4.1 (non-free), the headers of the runtime and of the compiler from
PyPI's 12.4 wheels, and CUB, Thrust and libcu++ from Debian's cccl 2.3.2, the
release CUDA 12.4 ships. Every file is pinned by its SHA-256; downloads are
kept in ~/.cache/rmsprop_op (or $RMSPROP_OP_CACHE) across clones.

The library links no CUDA runtime of its own: its calls resolve to the one
TensorFlow loads (libtensorflow_framework exports the runtime's API), so it
needs only what TensorFlow's GPU support needs. The standalone checker links
the runtime wheel's libcudart.so.12 (lib64/).
"""
import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLKIT = os.path.join(ROOT, ".cuda")
CUDA_RELEASE = "12.4"
DEBIAN = os.environ.get("RMSPROP_OP_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = os.environ.get("RMSPROP_OP_CACHE", os.path.expanduser("~/.cache/rmsprop_op"))

# (file, SHA-256, {path in the package: path in the toolkit}). A path ending
# in "/" is a folder, copied whole.
DEBS = [
    ("pool/non-free/n/nvidia-cuda-toolkit/nvidia-cuda-toolkit_12.4.131~12.4.1-2_amd64.deb",
     "cd5fe85aee38d108b315f408a688641478f2402622a10c677478eb7a6c4e5319",
     {"usr/lib/nvidia-cuda-toolkit/bin/nvcc": "bin/nvcc",
      "usr/lib/nvidia-cuda-toolkit/bin/crt/": "bin/crt/",
      "usr/lib/nvidia-cuda-toolkit/bin/cicc": "nvvm/bin/cicc",
      "usr/lib/nvidia-cuda-toolkit/libdevice/": "nvvm/libdevice/",
      "usr/lib/nvidia-cuda-toolkit/compute-sanitizer/": "compute-sanitizer/",
      **{f"usr/bin/{tool}": f"bin/{tool}"
         for tool in ("ptxas", "fatbinary", "nvlink", "cudafe++", "bin2c", "cuobjdump", "nvdisasm")}}),
    ("pool/main/c/cccl/libcub-dev_2.3.2-2_all.deb",
     "4a7e7c24ef2994140e47dba59507db60e281f968f17c18cf1cadc9c27c17c26b",
     {"usr/include/cub/": "include/cub/"}),
    ("pool/main/c/cccl/libthrust-dev_2.3.2-2_all.deb",
     "61fe44b65834efad9b079452ebec7396d4b37712d251421f4218b3bc652a3147",
     {"usr/include/thrust/": "include/thrust/"}),
    ("pool/main/c/cccl/libcu++-dev_2.3.2-2_all.deb",
     "30e911c1909265591b5ea793df0e49e56bed631238b68b3e75c97590c4985686",
     {"usr/include/cuda/": "include/cuda/", "usr/include/nv/": "include/nv/"}),
]
WHEELS = [
    ("nvidia-cuda-runtime-cu12==12.4.127",
     "nvidia_cuda_runtime_cu12-12.4.127-py3-none-manylinux2014_x86_64.whl",
     "64403288fa2136ee8e467cdc9c9427e0434110899d07c779f25b5c068934faa5",
     {"nvidia/cuda_runtime/include/": "include/",
      "nvidia/cuda_runtime/lib/libcudart.so.12": "lib64/libcudart.so.12"}),
    ("nvidia-cuda-nvcc-cu12==12.4.131",
     "nvidia_cuda_nvcc_cu12-12.4.131-py3-none-manylinux2014_x86_64.whl",
     "e4c9a35435c3b0e36c6397c5696334c9ea6650e524736cbd1c5d345ea099bb04",
     {"nvidia/cuda_nvcc/include/": "include/"}),
]

# nvcc reads its paths from the profile beside it (the layout of NVIDIA's
# own installs).
NVCC_PROFILE = """\
TOP              = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
LD_LIBRARY_PATH += $(TOP)/lib64:
PATH            += $(TOP)/nvvm/bin:$(_HERE_):
INCLUDES        +=  "-I$(TOP)/include" $(_SPACE_)
LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/lib64"
"""


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path, expected):
    if sha256(path) != expected:
        os.remove(path)
        raise SystemExit(f"{path}: SHA-256 mismatch (removed; run again to download it anew)")
    return path


def fetch_deb(pool_path, expected):
    path = os.path.join(CACHE, os.path.basename(pool_path))
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        url = f"{DEBIAN}/{pool_path}"
        print(f"downloading {url}", file=sys.stderr)
        with urllib.request.urlopen(url, timeout=600) as r, open(path + ".part", "wb") as f:
            shutil.copyfileobj(r, f)
        os.replace(path + ".part", path)
    return verified(path, expected)


def fetch_wheel(requirement, filename, expected):
    path = os.path.join(CACHE, filename)
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
                        "--python-version", "3", "--dest", CACHE, requirement], check=True)
    return verified(path, expected)


def deb_data(path):
    """The data.tar.xz member of a Debian package (an ar archive)."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise SystemExit(f"{path} is not a Debian package")
        while header := f.read(60):
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58])
            data = f.read(size)
            f.read(size % 2)
            if name == "data.tar.xz":
                return tarfile.open(fileobj=io.BytesIO(data), mode="r:xz")
    raise SystemExit(f"{path} has no data.tar.xz")


def copy_members(names, read, is_link, mapping, dest):
    """Copies the members named by `mapping` (see DEBS) into dest."""
    for source, target in mapping.items():
        chosen = [n for n in names if (n.startswith(source) if source.endswith("/") else n == source)]
        if not chosen:
            raise SystemExit(f"{source} missing from the package")
        for name in chosen:
            out = os.path.join(dest, target + name[len(source):] if source.endswith("/") else target)
            if name.endswith("/") or is_link(name):
                continue
            data = read(name)
            if data is None:  # a folder
                continue
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(data)
            os.chmod(out, 0o755)


def assemble(dest):
    work = tempfile.mkdtemp(prefix=".cuda-", dir=os.path.dirname(dest))
    try:
        for pool_path, expected, mapping in DEBS:
            with deb_data(fetch_deb(pool_path, expected)) as tar:
                members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
                copy_members(
                    list(members), lambda n: (tar.extractfile(members[n]).read()
                                              if members[n].isfile() else None),
                    lambda n: members[n].issym() or members[n].islnk(), mapping, work)
        for requirement, filename, expected, mapping in WHEELS:
            with zipfile.ZipFile(fetch_wheel(requirement, filename, expected)) as whl:
                names = [n for n in whl.namelist() if not n.endswith("__init__.py")]
                copy_members(names, whl.read, lambda n: False, mapping, work)
        os.symlink("libcudart.so.12", os.path.join(work, "lib64", "libcudart.so"))
        with open(os.path.join(work, "bin", "nvcc.profile"), "w") as f:
            f.write(NVCC_PROFILE)
        with open(os.path.join(work, "version.txt"), "w") as f:
            f.write(f"{CUDA_RELEASE}\n")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default=TOOLKIT)
    args = parser.parse_args(argv)
    nvcc = os.path.join(args.dest, "bin", "nvcc")
    stamp = os.path.join(args.dest, "version.txt")
    if not (os.path.exists(stamp) and open(stamp).read().strip() == CUDA_RELEASE):
        assemble(args.dest)
    print(nvcc)


if __name__ == "__main__":
    sys.exit(main())
