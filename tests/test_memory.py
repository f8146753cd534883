"""The command line keeps jemalloc's freed pages (set before pyarrow loads): large buffers
freed and allocated again, batch after batch, are not faulted in from the system each time."""

from __future__ import annotations

import json
import os
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
    env = {k: v for k, v in os.environ.items() if k != "JE_ARROW_MALLOC_CONF"}
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


THREADS = r"""
import json, os, sys
sys.argv = ["instructkit", {command!r}]
import instructkit.cli  # noqa: F401 - loads numpy, as every command does
print(json.dumps([os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task"))]))
"""


def _threads_at_start(command: str) -> tuple[str | None, int]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    code = THREADS.format(command=command)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    setting, threads = json.loads(out.stdout)
    return setting, threads


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_data_commands_start_no_blas_threads_and_training_keeps_them():
    render_setting, render_threads = _threads_at_start("render")
    train_setting, train_threads = _threads_at_start("train")
    assert render_setting == "1" and train_setting is None
    if (os.cpu_count() or 1) > 1:
        assert render_threads < train_threads  # OpenBLAS's spinning threads are not started
