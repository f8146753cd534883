"""Process settings the command line makes before anything loads pyarrow (cli.py's first import).

jemalloc, the pool render and mix allocate from (:mod:`instructkit.memory`), reads its options
once, when pyarrow loads it; ``pa.jemalloc_set_decay_ms`` later only reaches arenas created
after it. With Arrow's own options (pages decay in 1 s) every large buffer freed was handed
back to the system and faulted in again at the next batch: DialogSum x80 took 3.2 million
page faults and 10 s of system time, 0.2 million and 4 s with freed pages kept (wall 17 -> 12.5
s); x8 read from the input cache 270k -> 121k faults. The process keeps its high-water mark
instead (x80 peak RSS 700 MB, x8 610 MB). A ``JE_ARROW_MALLOC_CONF`` the user set wins.
"""

import os

os.environ.setdefault("JE_ARROW_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
