"""Arrow's memory pool for the data stages: jemalloc where this pyarrow build has it.

Render and mix allocate and free buffers of tens of MB per batch. With pyarrow's default
(mimalloc in recent wheels) those pages go back to the system and are faulted in again, batch
after batch: on DialogSum x2 (224k pairs) that was 1.1 s of system time against 0.45 s with
jemalloc, the whole command 1.4x the CPU. The pool never changes a byte of the output. An
explicit ``ARROW_DEFAULT_MEMORY_POOL`` is left as the user set it.

Freed pages are kept for 10 s instead of Arrow's 1 s before they go back to the system: a
render frees and reallocates a batch's buffers many times a second, and at 1 s jemalloc still
purged (and the kernel re-zeroed) about 40% of them (DialogSum x8: 290k page faults -> 170k).
That call (``pa.jemalloc_set_decay_ms``) only reaches arenas jemalloc creates afterwards, and
large buffers kept going back: the command line therefore sets jemalloc's options before
pyarrow loads it (:mod:`instructkit._cli_env`, freed pages kept for the process's life).
"""

from __future__ import annotations

import os

_chosen = False
DECAY_MS = 10_000


def use_fast_pool() -> None:
    """Make jemalloc Arrow's default pool (once per process), if available and not overridden."""
    global _chosen
    if _chosen or os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    _chosen = True
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(DECAY_MS)
    except (NotImplementedError, AttributeError, pa.ArrowException):
        pass  # a build without jemalloc: keep its default
