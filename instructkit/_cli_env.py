"""Process settings the command line makes before anything loads pyarrow or numpy (cli.py's
first import). A variable the user set always wins.

jemalloc, the pool render and mix allocate from (:mod:`instructkit.memory`), reads its options
once, when pyarrow loads it; ``pa.jemalloc_set_decay_ms`` later only reaches arenas created
after it. With Arrow's own options (pages decay in 1 s) every large buffer freed was handed
back to the system and faulted in again at the next batch: DialogSum x80 took 3.2 million
page faults and 10 s of system time, 0.2 million and 4 s with freed pages kept (wall 17 -> 12.5
s); x8 read from the input cache 270k -> 121k faults. The process keeps its high-water mark
instead (x80 peak RSS 600 MB, x8 590 MB).

numpy's OpenBLAS starts a thread per core when numpy is imported, and they spin waiting for
work that the data commands never give them: on 2 cores 0.25 CPU seconds of a 2.6 s render
of DialogSum x8 (wall 1.90 -> 1.77 s, median of 6). Only for the commands that do no linear
algebra; train, evaluate and the rest keep OpenBLAS's threads (torch may use them).
"""

import os
import sys

DATA_COMMANDS = frozenset({"render", "render-spec", "mix", "inspect", "export", "preview"})

os.environ.setdefault("JE_ARROW_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
if DATA_COMMANDS.intersection(sys.argv[1:2]):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
