import os

# This suite needs TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported,
# so tests/test_legacy.py runs it in a process of its own; the outer
# `pytest tests` run must not collect it.
if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    collect_ignore_glob = ["*.py"]
