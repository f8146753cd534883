"""The command line keeps jemalloc's freed pages (set before pyarrow loads): large buffers
freed and allocated again, batch after batch, are not faulted in from the system each time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("resource")

PROBE = r"""
import json, os, resource, sys
{first}
import ctypes
import pyarrow as pa
try:
    pool = pa.jemalloc_memory_pool()
except NotImplementedError:
    print(json.dumps(None)); sys.exit()
size = 45 << 20  # a rendered batch's prompt column
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    buffer = pa.allocate_buffer(size, memory_pool=pool)
    ctypes.memset(buffer.address, 1, size)
    del buffer
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (size // 4096)))
"""


def _faulted_allocations(first_import: str) -> float | None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "JE_ARROW_MALLOC_CONF"}
    code = PROBE.format(first=first_import)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page faults as Linux counts them")
def test_the_cli_keeps_freed_pages_where_pyarrow_alone_returns_them():
    plain = _faulted_allocations("")
    if plain is None:
        pytest.skip("this pyarrow has no jemalloc")
    with_cli = _faulted_allocations("import instructkit.cli")
    assert with_cli < 2, with_cli  # the first allocation faults, the next ones reuse it
    if plain < 4:
        pytest.skip(f"this jemalloc keeps pages anyway ({plain:.1f} allocations faulted)")
    assert plain > with_cli + 3  # without the setting nearly every allocation faulted again
