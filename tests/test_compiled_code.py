"""What the compiler made of the CPU library: the sparse updates' prefetches
are in it. A function whose only effect is __builtin_prefetch looks free of
side effects to GCC, which then drops its calls (RMSPROP_PREFETCHER in
sparse_row_groups.h); the loops still give the same numbers, only slower
(for 4096 Zipf ids of a 1M x 64 table with int8 state, 0.80 ms an update
instead of 0.46; benchmarks/README.md, "Compact state"), so no numeric test
would notice."""
import re
import shutil
import subprocess

import pytest

from rmsprop_op import _loader

objdump = shutil.which("objdump")
pytestmark = pytest.mark.skipif(objdump is None, reason="needs objdump (binutils)")


def _prefetching_functions():
    """Demangled names of the library's functions that hold a prefetch."""
    listing = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", _loader.CPU_LIBRARY],
                             capture_output=True, text=True, check=True).stdout
    names, function = set(), None
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header.group(1)
        elif function and re.search(r"\bprefetch(t0|t1|t2|nta|w)?\b", line):
            names.add(function)
    return names


def test_sparse_updates_ask_for_rows_ahead():
    names = _prefetching_functions()
    # The full-precision sparse update (each row a few groups ahead), and
    # the compact one (each run of rows of a block, one run ahead).
    assert any("PrefetchRow<float>" in n for n in names), sorted(names)
    assert any("PrefetchRun" in n for n in names), sorted(names)
