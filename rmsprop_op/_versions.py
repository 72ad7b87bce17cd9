"""This package's version and the supported TensorFlow and Keras releases:
the one place they are written.

Plain Python with no imports of TensorFlow, so that setup.py and `make compat`
can read it before TensorFlow is installed.
"""
import re

# The release, without the TensorFlow label (see `package_version`); what
# CHANGELOG.md's newest entry describes.
VERSION = "0.2.0"
MIN_TENSORFLOW = (2, 16)
NEWEST_TESTED_TENSORFLOW = (2, 21)
MIN_KERAS = (3, 3)
MIN_TF_KERAS = MIN_TENSORFLOW  # tf_keras releases follow TensorFlow's minors

SUPPORTED = (
    f"TensorFlow {MIN_TENSORFLOW[0]}.{MIN_TENSORFLOW[1]} or newer (tested up to "
    f"{NEWEST_TESTED_TENSORFLOW[0]}.{NEWEST_TESTED_TENSORFLOW[1]}) with Keras "
    f"{MIN_KERAS[0]}.{MIN_KERAS[1]} or newer, or tf_keras {MIN_TF_KERAS[0]}.{MIN_TF_KERAS[1]} "
    "or newer for keras_optimizer.legacy")


def release(version):
    """(major, minor) of a version string: "2.16.2" -> (2, 16), "2.23.0.dev2026" -> (2, 23)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def is_prerelease(version):
    """True for nightlies and release candidates, whose ABI may change between builds."""
    return re.search(r"(dev|rc|a|b)\d*", version.split("+")[0]) is not None


def package_version(tensorflow_version):
    """The version of a build for `tensorflow_version`: "0.2.0+tf2.21" (the
    op library's C++ ABI is that of one TensorFlow minor), or the whole
    version for a nightly or release candidate, which matches only itself."""
    if is_prerelease(tensorflow_version):
        # tf.__version__ spells a candidate "2.22.0-rc0", pip "2.22.0rc0": one label for both.
        label = re.sub(r"[-_.]?(rc|a|b|dev)", r"\1", tensorflow_version.split("+")[0])
        return f"{VERSION}+tf{label}"
    return "{}+tf{}.{}".format(VERSION, *release(tensorflow_version))


class UnsupportedVersion(ImportError):
    """An installed TensorFlow, Keras or tf_keras release outside the window."""


def unsupported(package, version, minimum, hint):
    """The error message when `version` of `package` is below `minimum`, else None."""
    if release(version) >= minimum:
        return None
    return (f"{package} {version} is installed, but this package supports {SUPPORTED}. "
            f"{hint}")


def check(package, version, minimum, hint):
    message = unsupported(package, version, minimum, hint)
    if message is not None:
        raise UnsupportedVersion(message)
